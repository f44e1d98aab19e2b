package sandbox

import (
	"errors"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
)

func TestStoreReservesMetadataAndKeepsRecordsAcrossOpens(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	md := Metadata{Name: "web", Namespace: "default", UID: "u1"}
	a := &Sandbox{ID: container.NewID(), Metadata: md, Created: time.Now(), State: NotReady}
	if err := st.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := st.Add(&Sandbox{ID: container.NewID(), Metadata: md}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("a second sandbox with the same metadata: %v, want a conflict", err)
	}
	next := md
	next.Attempt = 1
	if err := st.Add(&Sandbox{ID: container.NewID(), Metadata: next, Created: time.Now()}); err != nil {
		t.Fatalf("the next attempt: %v", err)
	}

	got, err := st.Get(a.ID[:8])
	if err != nil || got.ID != a.ID {
		t.Fatalf("get by prefix: %v %v", got.ID, err)
	}
	got.State, got.IP = Ready, "10.42.0.2"
	if s, _ := st.Get(a.ID); s.State != NotReady {
		t.Fatal("a copy's change showed in the store before it was saved")
	}
	if err := st.Save(got); err != nil {
		t.Fatal(err)
	}

	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := again.Get(a.ID); err != nil || s.State != Ready || s.IP != "10.42.0.2" || s.Dir() == "" {
		t.Fatalf("after reopening: %+v %v", s, err)
	}
	if len(again.List()) != 2 {
		t.Fatalf("%d sandboxes after reopening, want 2", len(again.List()))
	}
	if err := again.Delete(a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := again.Get(a.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := again.Save(got); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("saving a deleted sandbox: %v", err)
	}
}
