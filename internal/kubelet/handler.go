package kubelet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// action is what a probe or lifecycle hook does: exec a command, GET a URL, open a TCP port.
type action struct {
	exec    *corev1.ExecAction
	httpGet *corev1.HTTPGetAction
	tcp     *corev1.TCPSocketAction
	sleep   *corev1.SleepAction
}

// runHandler runs a lifecycle hook (postStart, preStop) for the container.
func (k *Kubelet) runHandler(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id, podIP string, h *corev1.LifecycleHandler, timeout time.Duration) error {
	_, err := k.runAction(ctx, pod, c, id, podIP, action{exec: h.Exec, httpGet: h.HTTPGet, tcp: h.TCPSocket, sleep: h.Sleep}, timeout)
	return err
}

// runAction runs one action; its output is returned for events. An error means it failed.
func (k *Kubelet) runAction(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id, podIP string, a action, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if podIP == "" {
		podIP = pod.Status.PodIP
	}
	switch {
	case a.exec != nil:
		secs := max(int64(timeout/time.Second), 1)
		r, err := k.runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: a.exec.Command, Timeout: secs})
		if err != nil {
			return "", err
		}
		out := string(r.Stdout) + string(r.Stderr)
		if r.ExitCode != 0 {
			return out, fmt.Errorf("command %q exited with %d: %s", strings.Join(a.exec.Command, " "), r.ExitCode, strings.TrimSpace(out))
		}
		return out, nil
	case a.httpGet != nil:
		return httpAction(ctx, c, podIP, a.httpGet)
	case a.tcp != nil:
		host := a.tcp.Host
		if host == "" {
			host = podIP
		}
		port, err := resolvePort(a.tcp.Port, c)
		if err != nil {
			return "", err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return "", err
		}
		conn.Close()
		return "", nil
	case a.sleep != nil:
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(a.sleep.Seconds) * time.Second):
		}
		return "", nil
	}
	return "", errors.New("the handler has no action")
}

// httpAction GETs the URL and fails on a status outside 200–399, as upstream's prober does.
func httpAction(ctx context.Context, c *corev1.Container, podIP string, g *corev1.HTTPGetAction) (string, error) {
	host := g.Host
	if host == "" {
		host = podIP
	}
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	u, err = u.Parse(path)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", "kube-probe/1.32")
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "host") {
			req.Host = h.Value
		} else {
			req.Header.Add(h.Name, h.Value)
		}
	}
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true},
		// Redirects to other hosts are not followed (upstream reports them as success).
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if r.URL.Hostname() != u.Hostname() || len(via) >= 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return "", fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return "", nil
}

// resolvePort turns a number or a named container port into a number.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	if c != nil {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort), nil
			}
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("couldn't find port %q in the container's ports", p.StrVal)
}
