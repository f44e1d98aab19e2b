package ttlafterfinished

import (
	"context"
	"log/slog"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func TestFinishedJobIsDeletedWhenItsTTLRunsOut(t *testing.T) {
	done := time.Now()
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "pi", Namespace: "default"},
		Spec:       batchv1.JobSpec{TTLSecondsAfterFinished: ptr.To[int32](100)},
		Status: batchv1.JobStatus{CompletionTime: &metav1.Time{Time: done},
			Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}},
	}
	client := fake.NewClientset(j)
	f := informers.NewSharedInformerFactory(client, 0)
	c := New(client, f.Batch().V1().Jobs(), slog.New(slog.DiscardHandler))
	f.Batch().V1().Jobs().Informer().GetIndexer().Add(j)
	deletes := func(at time.Time) int {
		c.now = func() time.Time { return at }
		client.ClearActions()
		if err := c.sync(context.Background(), "default/pi"); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, a := range client.Actions() {
			if a.GetVerb() == "delete" {
				n++
			}
		}
		return n
	}
	if deletes(done.Add(99*time.Second)) != 0 {
		t.Fatal("deleted before its TTL")
	}
	if deletes(done.Add(101*time.Second)) != 1 {
		t.Fatal("not deleted after its TTL")
	}
}
