package registry

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"testing"
)

func TestTagsListPagination(t *testing.T) {
	r := newRegistry(t)
	img := r.pushImage("lib/app", "e", 1)
	for _, tag := range []string{"c", "a", "d", "b"} {
		r.must(http.StatusCreated, "PUT", "/v2/lib/app/manifests/"+tag, img.manifest, "Content-Type", MediaTypeOCIManifest)
	}
	type tagList struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	get := func(query string) (tagList, string) {
		res := r.must(http.StatusOK, "GET", "/v2/lib/app/tags/list"+query, nil)
		var l tagList
		if err := json.Unmarshal(res.Body, &l); err != nil {
			t.Fatalf("tags/list%s: %v: %s", query, err, res.Body)
		}
		return l, res.Header.Get("Link")
	}
	tests := []struct {
		query, link string
		want        []string
	}{
		{"", "", []string{"a", "b", "c", "d", "e"}},
		{"?n=2", `</v2/lib/app/tags/list?last=b&n=2>; rel="next"`, []string{"a", "b"}},
		{"?n=2&last=b", `</v2/lib/app/tags/list?last=d&n=2>; rel="next"`, []string{"c", "d"}},
		{"?n=2&last=d", "", []string{"e"}},
		{"?last=bb", "", []string{"c", "d", "e"}},
		{"?n=5", "", []string{"a", "b", "c", "d", "e"}},
		{"?n=0", "", []string{}},
		{"?last=z", "", []string{}},
	}
	for _, tt := range tests {
		l, link := get(tt.query)
		if l.Name != "lib/app" || !reflect.DeepEqual(l.Tags, tt.want) || link != tt.link {
			t.Errorf("tags/list%s = %q %v, Link %q; want %v, Link %q", tt.query, l.Name, l.Tags, link, tt.want, tt.link)
		}
	}
	if code := r.must(http.StatusBadRequest, "GET", "/v2/lib/app/tags/list?n=-1", nil).errorCode(); code != "PAGINATION_NUMBER_INVALID" {
		t.Errorf("n=-1: code %q", code)
	}
	if code := r.must(http.StatusNotFound, "GET", "/v2/nothing/tags/list", nil).errorCode(); code != "NAME_UNKNOWN" {
		t.Errorf("unknown repository: code %q", code)
	}
}

func TestCatalog(t *testing.T) {
	r := newRegistry(t)
	for _, name := range []string{"b", "a/x", "a", "a-b", "c/d/e"} {
		r.pushImage(name, "latest", 0)
	}
	get := func(query string) ([]string, string) {
		res := r.must(http.StatusOK, "GET", "/v2/_catalog"+query, nil)
		var c struct {
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(res.Body, &c); err != nil {
			t.Fatal(err)
		}
		return c.Repositories, res.Header.Get("Link")
	}
	all, link := get("")
	if want := []string{"a", "a-b", "a/x", "b", "c/d/e"}; !reflect.DeepEqual(all, want) || link != "" {
		t.Errorf("catalog = %v (Link %q), want %v", all, link, want)
	}
	// Follow the Link header page by page.
	var paged []string
	query := "?n=2"
	for i := 0; i < 10 && query != ""; i++ {
		page, link := get(query)
		paged = append(paged, page...)
		query = ""
		if m := regexp.MustCompile(`^</v2/_catalog(\?[^>]+)>; rel="next"$`).FindStringSubmatch(link); m != nil {
			query = m[1]
		}
	}
	if !reflect.DeepEqual(paged, all) {
		t.Errorf("catalog page by page = %v, want %v", paged, all)
	}
}
