// Package streamtranslator serves kubectl's WebSocket streams for pods (exec, attach and
// port-forward) by speaking SPDY to the kubelet, as kube-apiserver does since 1.30
// (features TranslateStreamsToWebSockets and PortForwardWebsockets).
//
// Kubelets and container runtimes speak SPDY; kubectl 1.30+ asks the API server for a
// WebSocket first and falls back to SPDY only when the upgrade is refused:
//   - exec and attach with subprotocol v5.channel.k8s.io: the client's channels (stdin,
//     stdout, stderr, error, resize, and v5's close signal for stdin) are copied to and
//     from an SPDY remote command session with the kubelet (Translator.ServeRemoteCommand);
//   - port-forward with subprotocol SPDY/3.1+portforward.k8s.io: the client speaks SPDY
//     itself, inside binary WebSocket messages; the server upgrades to SPDY towards the
//     kubelet and splices the two byte streams (Translator.ServePortForward).
//
// Other requests (SPDY, older WebSocket protocols) are for the caller to proxy as they are.
package streamtranslator

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/gorilla/websocket"
	constants "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// Translator serves translated streams. The caller has authorized the request and
// found the kubelet URL it is for; the translator only moves bytes.
type Translator struct {
	// Transport reaches kubelets: its TLS configuration (client certificate, CA) is
	// used to dial them. Normally an *http.Transport.
	Transport http.RoundTripper
	Log       *slog.Logger
}

// IsRemoteCommand reports whether r is an exec or attach request the translator serves:
// a WebSocket upgrade offering v5.channel.k8s.io. Clients offering only older channel
// protocols get the kubelet's own WebSocket server, which has no stdin close signal.
func IsRemoteCommand(r *http.Request) bool {
	return wsstream.IsWebSocketRequest(r) && offers(r, func(p string) bool { return p == constants.StreamProtocolV5Name })
}

// IsPortForwardTunnel reports whether r is a port-forward request tunnelling SPDY
// through a WebSocket: an upgrade offering a subprotocol SPDY/3.1+NAME.k8s.io.
func IsPortForwardTunnel(r *http.Request) bool {
	return wsstream.IsWebSocketRequest(r) && len(tunnelledProtocols(r)) > 0
}

// offers reports whether the client offers a WebSocket subprotocol that ok accepts.
func offers(r *http.Request, ok func(string) bool) bool {
	for _, p := range websocket.Subprotocols(r) {
		if ok(p) {
			return true
		}
	}
	return false
}

func (t *Translator) log() *slog.Logger {
	if t.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Log
}

// queryBool reads a boolean query parameter the way the API server's parameter codec
// does: absent is false; "false" (any case) and "0" are false; anything else is true.
func queryBool(r *http.Request, name string) bool {
	vs, ok := r.URL.Query()[name]
	if !ok || len(vs) == 0 {
		return false
	}
	return !(vs[0] == "0" || strings.EqualFold(vs[0], "false"))
}
