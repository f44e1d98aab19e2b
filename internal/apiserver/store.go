package apiserver

import (
	"bytes"
	"context"
	"errors"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"github.com/berth-project/berth/internal/storage"
)

// Built-in objects are kept in etcd as Kubernetes protobuf of their external version (the
// "k8s\x00" envelope upstream writes), custom resources as JSON, all without a
// resourceVersion: the etcd revision is the resourceVersion, set on the way out. Reads take
// either encoding, so data written as JSON (by earlier Berth versions, or by hand) still
// reads; it is rewritten as protobuf on its next update.
var (
	storageJSON     = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{})
	storageProtobuf = protobuf.NewSerializer(scheme, scheme)
	protobufPrefix  = []byte{0x6b, 0x38, 0x73, 0x00} // "k8s\x00"
)

func (s *Server) encodeForStorage(res *resource, obj runtime.Object) ([]byte, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := acc.GetResourceVersion()
	acc.SetResourceVersion("")
	defer acc.SetResourceVersion(rv)
	if res.custom != nil {
		return res.custom.encode(obj)
	}
	return runtime.Encode(codecs.EncoderForVersion(storageProtobuf, res.gvr.GroupVersion()), obj)
}

func (s *Server) decodeFromStorage(res *resource, kv storage.KV) (runtime.Object, error) {
	obj := res.new()
	gvk := res.gvk()
	dec := runtime.Decoder(storageJSON)
	if bytes.HasPrefix(kv.Value, protobufPrefix) {
		dec = storageProtobuf
	}
	if _, _, err := dec.Decode(kv.Value, &gvk, obj); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	acc.SetResourceVersion(strconv.FormatInt(kv.ModRevision, 10))
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	if res.custom != nil {
		res.custom.defaultOnRead(obj)
	}
	return obj, nil
}

// getObject reads one object.
func (s *Server) getObject(ctx context.Context, res *resource, namespace, name string) (runtime.Object, error) {
	kv, err := s.store.Get(ctx, res.key(namespace, name))
	if err != nil {
		return nil, storageError(err, res, name)
	}
	return s.decodeFromStorage(res, kv)
}

// storageError turns a storage error into the API's.
func storageError(err error, res *resource, name string) error {
	gr := res.gvr.GroupResource()
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, storage.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, storage.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	case errors.Is(err, storage.ErrCompacted):
		return apierrors.NewResourceExpired("too old resource version")
	}
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return err
	}
	return apierrors.NewInternalError(err)
}
