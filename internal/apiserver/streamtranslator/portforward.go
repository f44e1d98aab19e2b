package streamtranslator

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	pfconstants "k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// upgradeTimeout bounds the kubelet's answer to the SPDY upgrade.
const upgradeTimeout = 30 * time.Second

// maxErrorBody bounds the part of a kubelet's refusal passed on to the client.
const maxErrorBody = 64 << 10

// ServePortForward serves a port-forward request tunnelling SPDY through a WebSocket (see
// IsPortForwardTunnel). It upgrades to SPDY towards the kubelet at kubelet
// (https://NODE:PORT/portForward/NS/POD) first, offering the SPDY protocols the client
// offered, and only then accepts the client's WebSocket with the protocol the kubelet
// chose, prefixed again with "SPDY/3.1+"; from there on, each binary WebSocket message
// carries SPDY bytes, copied as they are in both directions until either side closes.
//
// A kubelet that refuses the upgrade has its answer passed on to the client. An error
// means nothing was written: the caller answers with it.
func (t *Translator) ServePortForward(w http.ResponseWriter, r *http.Request, kubelet *url.URL) error {
	log := t.log().With("path", r.URL.Path)
	backend, br, resp, err := t.upgradeKubelet(r.Context(), kubelet, tunnelledProtocols(r))
	if err != nil {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("error trying to reach the kubelet: %v", err))
	}
	defer backend.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		passOn(w, resp)
		return nil
	}
	chosen := strings.TrimSpace(resp.Header.Get(httpstream.HeaderProtocolVersion))
	if !strings.Contains(strings.ToLower(resp.Header.Get(httpstream.HeaderUpgrade)), strings.ToLower(spdy.HeaderSpdy31)) || chosen == "" {
		return apierrors.NewInternalError(fmt.Errorf("the kubelet answered the port-forward upgrade with %q protocol %q", resp.Header.Get(httpstream.HeaderUpgrade), chosen))
	}
	// kubectl sends no Origin; the upgrader's default check refuses only a browser's
	// cross-site one.
	up := websocket.Upgrader{Subprotocols: []string{pfconstants.WebsocketsSPDYTunnelingPrefix + chosen}}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		log.Debug("port-forward tunnel: websocket upgrade", "err", err) // the upgrader answered
		return nil
	}
	log.Debug("port-forward tunnel open", "protocol", ws.Subprotocol())
	splice(portforward.NewTunnelingConnection("server", ws), backend, br)
	log.Debug("port-forward tunnel closed")
	return nil
}

// tunnelledProtocols are the SPDY protocols a client offers inside WebSocket subprotocols
// SPDY/3.1+NAME.k8s.io, without the prefix.
func tunnelledProtocols(r *http.Request) []string {
	var out []string
	for _, p := range websocket.Subprotocols(r) {
		if strings.HasPrefix(p, pfconstants.WebsocketsSPDYTunnelingPrefix) && strings.HasSuffix(p, pfconstants.KubernetesSuffix) {
			out = append(out, strings.TrimPrefix(p, pfconstants.WebsocketsSPDYTunnelingPrefix))
		}
	}
	return out
}

// upgradeKubelet sends the kubelet an SPDY upgrade request for protocols and reads its
// answer. The returned reader holds whatever the kubelet sent after the answer's headers.
func (t *Translator) upgradeKubelet(ctx context.Context, kubelet *url.URL, protocols []string) (net.Conn, *bufio.Reader, *http.Response, error) {
	conn, err := proxy.DialURL(ctx, kubelet, t.Transport)
	if err != nil {
		return nil, nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, kubelet.String(), nil)
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	req.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	req.Header.Set(httpstream.HeaderUpgrade, spdy.HeaderSpdy31)
	for _, p := range protocols {
		req.Header.Add(httpstream.HeaderProtocolVersion, p)
	}
	conn.SetDeadline(time.Now().Add(upgradeTimeout))
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("reading the upgrade response: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return conn, br, resp, nil
}

// passOn answers the client with a kubelet's refusal.
func passOn(w http.ResponseWriter, resp *http.Response) {
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, maxErrorBody))
}

// splice copies between the client's tunnel and the kubelet (bytes already read from it
// first) until either direction ends, then closes both.
func splice(client net.Conn, kubelet net.Conn, fromKubelet io.Reader) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			kubelet.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer closeBoth()
		io.Copy(client, fromKubelet)
	}()
	go func() {
		defer wg.Done()
		defer closeBoth()
		io.Copy(kubelet, client)
	}()
	wg.Wait()
}
