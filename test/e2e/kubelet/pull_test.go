package kubelet

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPullsWithImagePullSecrets pushes the busybox image to a `berth registry` that wants a
// password, then runs a pod whose imagePullSecrets hold it: the kubelet must pass the
// credentials to the runtime's pull. A pod without the secret fails to pull.
func TestPullsWithImagePullSecrets(t *testing.T) {
	need(t)
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	os.WriteFile(filepath.Join(dir, "htpasswd"), []byte("puller:"+string(hash)+"\n"), 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	root, _ := filepath.Abs("../../..")
	reg := exec.Command(filepath.Join(root, "bin", "berth"), "registry", "--addr", addr, "--data-dir", filepath.Join(dir, "data"), "--htpasswd", filepath.Join(dir, "htpasswd"))
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Process.Signal(syscall.SIGTERM); reg.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("registry did not start")
		}
		time.Sleep(50 * time.Millisecond) // polling for the registry to listen
	}
	img, err := tarball.ImageFromPath(filepath.Join(testDir, "berth.test_busybox_1.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := addr + "/private/busybox:1"
	tag, _ := name.NewTag(ref, name.Insecure)
	if err := remote.Write(tag, img, remote.WithAuth(&authn.Basic{Username: "puller", Password: "pw"})); err != nil {
		t.Fatalf("push: %v", err)
	}

	ns := namespace(t)
	cfg := fmt.Sprintf(`{"auths":{"http://%s":{"auth":%q}}}`, addr, base64.StdEncoding.EncodeToString([]byte("puller:pw")))
	if _, err := cs.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := busybox("main", "exec sleep 3600")
	c.Image, c.ImagePullPolicy = ref, corev1.PullAlways
	noCreds := newPod(ns, "nocreds", c)
	create(t, noCreds)
	waitPod(t, ns, "nocreds", 30*time.Second, "failing to pull", func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses
		return len(s) == 1 && s[0].State.Waiting != nil && (s[0].State.Waiting.Reason == "ErrImagePull" || s[0].State.Waiting.Reason == "ImagePullBackOff")
	})
	withCreds := newPod(ns, "creds", c)
	withCreds.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	create(t, withCreds)
	p := waitPod(t, ns, "creds", 30*time.Second, "running", running)
	if id := p.Status.ContainerStatuses[0].ImageID; id == "" {
		t.Errorf("imageID is empty")
	}
}
