package streamtranslator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	constants "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

const (
	// idleTimeout closes a WebSocket nothing has crossed for this long (the kubelet's value).
	idleTimeout = 4 * time.Hour
	// statusTimeout bounds writing the final Status to a client that stopped reading.
	statusTimeout = 10 * time.Second
)

// streams says which of a remote command's standard streams the client asked for, in the
// query parameters stdin, stdout, stderr and tty (exec and attach alike).
type streams struct {
	stdin, stdout, stderr, tty bool
}

func streamsOf(r *http.Request) streams {
	return streams{stdin: queryBool(r, "stdin"), stdout: queryBool(r, "stdout"), stderr: queryBool(r, "stderr"), tty: queryBool(r, "tty")}
}

// channels is the client's side of a remote command: a v5.channel.k8s.io WebSocket whose
// binary messages start with a channel number (0 stdin, 1 stdout, 2 stderr, 3 error,
// 4 resize; 255 closes the channel named in the next byte).
type channels struct {
	conn  *wsstream.Conn
	ch    []io.ReadWriteCloser
	want  streams
	sizes chan remotecommand.TerminalSize
}

// openChannels answers the client's upgrade. When it fails, the WebSocket library has
// already answered the client.
func openChannels(ctx context.Context, w http.ResponseWriter, r *http.Request, want streams) (*channels, error) {
	kind := func(on bool, t wsstream.ChannelType) wsstream.ChannelType {
		if on {
			return t
		}
		return wsstream.IgnoreChannel
	}
	types := make([]wsstream.ChannelType, 5)
	types[constants.StreamStdIn] = kind(want.stdin, wsstream.ReadChannel)
	types[constants.StreamStdOut] = kind(want.stdout, wsstream.WriteChannel)
	types[constants.StreamStdErr] = kind(want.stderr, wsstream.WriteChannel)
	types[constants.StreamErr] = wsstream.WriteChannel
	types[constants.StreamResize] = kind(want.tty, wsstream.ReadChannel)
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		constants.StreamProtocolV5Name: {Binary: true, Channels: types},
	})
	conn.SetIdleTimeout(idleTimeout)
	_, ch, err := conn.Open(w, r)
	if err != nil {
		return nil, fmt.Errorf("websocket upgrade: %w", err)
	}
	c := &channels{conn: conn, ch: ch, want: want}
	// An empty message on the first channel the client reads tells it the session is
	// open (the kubelet's WebSocket server does the same).
	first := constants.StreamErr
	switch {
	case want.stdout:
		first = constants.StreamStdOut
	case want.stderr:
		first = constants.StreamStdErr
	}
	if _, err := ch[first].Write(nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("websocket: announcing the session: %w", err)
	}
	if want.tty {
		c.sizes = make(chan remotecommand.TerminalSize)
		go c.readSizes(ctx)
	}
	return c, nil
}

// options are the SPDY session's streams: the client's channels, as asked for.
func (c *channels) options() remotecommand.StreamOptions {
	var o remotecommand.StreamOptions
	if c.want.stdin {
		o.Stdin = c.ch[constants.StreamStdIn]
	}
	if c.want.stdout {
		o.Stdout = c.ch[constants.StreamStdOut]
	}
	if c.want.stderr {
		o.Stderr = c.ch[constants.StreamStdErr]
	}
	if c.want.tty {
		o.Tty = true
		o.TerminalSizeQueue = sizeQueue(c.sizes)
	}
	return o
}

// readSizes decodes the resize channel's JSON TerminalSize messages until it closes.
func (c *channels) readSizes(ctx context.Context) {
	defer close(c.sizes)
	dec := json.NewDecoder(c.ch[constants.StreamResize])
	for {
		var size remotecommand.TerminalSize
		if err := dec.Decode(&size); err != nil {
			return
		}
		select {
		case c.sizes <- size:
		case <-ctx.Done():
			return
		}
	}
}

// sizeQueue hands the client's terminal sizes to the SPDY session.
type sizeQueue chan remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	size, ok := <-q
	if !ok {
		return nil
	}
	return &size
}

// finish writes the session's outcome to the error channel as a Status, as the kubelet
// does: Success, NonZeroExitCode with the exit code as a cause, or the failure.
func (c *channels) finish(status metav1.Status) error {
	data, err := json.Marshal(status)
	if err != nil {
		return err
	}
	c.conn.SetWriteDeadline(statusTimeout)
	_, err = c.ch[constants.StreamErr].Write(data)
	return err
}

func (c *channels) close() { c.conn.Close() }
