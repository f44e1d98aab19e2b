package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// bindAll binds every pending pod the informer reports to hollow nodes round-robin,
// with workers requests in flight: what the API can bind with no scheduling at all.
func bindAll(ctx context.Context, client kubernetes.Interface, f informers.SharedInformerFactory, nodes, workers int) {
	pending := make(chan *corev1.Pod, 100000)
	f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if p := o.(*corev1.Pod); p.Spec.NodeName == "" {
				pending <- p
			}
		},
	})
	var next atomic.Int64
	for range workers {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case p := <-pending:
					node := fmt.Sprintf("hollow-%05d", next.Add(1)%int64(nodes))
					b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}
					if err := client.CoreV1().Pods(p.Namespace).Bind(ctx, b, metav1.CreateOptions{}); err != nil && ctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "bind:", err)
					}
				}
			}
		}()
	}
}
