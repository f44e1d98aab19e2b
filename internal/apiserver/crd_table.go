package apiserver

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/util/jsonpath"
)

// tableFor prints objects of a resource as a Table: a custom resource with its CRD's
// additionalPrinterColumns after NAME (NAME and AGE when it declares none, as upstream).
func tableFor(res *resource, objs []runtime.Object) *metav1.Table {
	if res.custom == nil || len(res.custom.columns) == 0 {
		return table(res.kind, objs, true)
	}
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"}}
	t.ColumnDefinitions = append(t.ColumnDefinitions, metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name must be unique within a namespace."})
	paths := make([]*jsonpath.JSONPath, len(res.custom.columns))
	for i, c := range res.custom.columns {
		t.ColumnDefinitions = append(t.ColumnDefinitions, metav1.TableColumnDefinition{Name: c.Name, Type: c.Type, Format: c.Format, Description: c.Description, Priority: c.Priority})
		p := jsonpath.New(c.Name).AllowMissingKeys(true)
		if err := p.Parse("{" + c.JSONPath + "}"); err == nil {
			paths[i] = p
		}
	}
	for _, obj := range objs {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		row := []any{u.GetName()}
		for i, c := range res.custom.columns {
			row = append(row, columnValue(paths[i], c, u))
		}
		raw, _ := u.MarshalJSON()
		t.Rows = append(t.Rows, metav1.TableRow{Cells: row, Object: runtime.RawExtension{Raw: raw}})
	}
	return t
}

// columnValue is one cell: the value at the column's JSONPath, a date as its age.
func columnValue(p *jsonpath.JSONPath, c apiextensionsv1.CustomResourceColumnDefinition, u *unstructured.Unstructured) any {
	if p == nil {
		return nil
	}
	results, err := p.FindResults(u.Object)
	if err != nil || len(results) == 0 || len(results[0]) == 0 {
		return nil
	}
	v := results[0][0].Interface()
	switch c.Type {
	case "date":
		s, ok := v.(string)
		if !ok {
			return nil
		}
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return "<invalid>"
		}
		return duration.HumanDuration(time.Since(ts))
	case "integer", "number", "boolean":
		return v
	case "string":
		if s, ok := v.(string); ok {
			return s
		}
	}
	var buf bytes.Buffer
	if err := p.PrintResults(&buf, results[0]); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(buf.String())
}
