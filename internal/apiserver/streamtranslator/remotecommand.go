package streamtranslator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	constants "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/tools/remotecommand"
	clientspdy "k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/util/exec"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// pingPeriod keeps the SPDY connection to the kubelet alive through idle NATs and
// proxies while nobody types.
const pingPeriod = 5 * time.Second

// ServeRemoteCommand serves an exec or attach request (see IsRemoteCommand) by opening
// the same session with the kubelet at kubelet (https://NODE:PORT/exec/NS/POD/CONTAINER
// or /attach/..., with the client's query) over SPDY, and copying between the two until
// the command ends. Its outcome, exit code included, reaches the client as a Status on
// the error channel, as the kubelet would have sent it.
func (t *Translator) ServeRemoteCommand(w http.ResponseWriter, r *http.Request, kubelet *url.URL) {
	log := t.log().With("path", r.URL.Path)
	want := streamsOf(r)
	// The WebSocket library reports every session's end as an error through the klog
	// logger of the request's context; what matters is logged here instead.
	r = r.WithContext(klog.NewContext(r.Context(), logr.Discard()))
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ch, err := openChannels(ctx, w, r, want)
	if err != nil {
		log.Debug("stream translator", "err", err)
		return
	}
	defer ch.close()
	log.Debug("stream translator: websocket open", "protocol", constants.StreamProtocolV5Name, "stdin", want.stdin, "tty", want.tty)
	err = t.remoteCommand(ctx, kubelet, ch.options())
	if err != nil {
		log.Debug("stream translator: session ended", "err", err)
	}
	if err := ch.finish(statusOf(err)); err != nil {
		log.Debug("stream translator: writing the status", "err", err)
	}
}

// remoteCommand runs the SPDY side of a session with the kubelet.
func (t *Translator) remoteCommand(ctx context.Context, kubelet *url.URL, opts remotecommand.StreamOptions) error {
	rt, err := spdy.NewRoundTripperWithConfig(spdy.RoundTripperConfig{UpgradeTransport: t.Transport, PingPeriod: pingPeriod})
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	// A kubelet has no business redirecting the API server elsewhere.
	executor, err := remotecommand.NewSPDYExecutorRejectRedirects(rt, clientspdy.NewUpgraderForStreaming(rt), http.MethodPost, kubelet)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	return executor.StreamWithContext(ctx, opts)
}

// statusOf is the error channel's Status for a session's outcome.
func statusOf(err error) metav1.Status {
	var status apierrors.APIStatus
	var exit exec.CodeExitError
	switch {
	case err == nil:
		return metav1.Status{Status: metav1.StatusSuccess}
	case errors.As(err, &exit) && exit.Exited():
		return metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  constants.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", exit),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{
				{Type: constants.ExitCodeCauseType, Message: fmt.Sprint(exit.ExitStatus())},
			}},
		}
	case errors.As(err, &status):
		return status.Status()
	}
	return apierrors.NewInternalError(err).Status()
}
