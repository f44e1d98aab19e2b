package shim

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// criLog writes the CRI's container log format, which the kubelet reads and rotates:
//
//	2016-10-06T00:17:09.669794202Z stdout F a whole line
//	2016-10-06T00:17:09.669794202Z stdout P the start of a line longer than 16 KiB
//
// F ends a line (its newline is not written), P is a piece of a longer one.
type criLog struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	partial map[string][]byte // per stream, a line's start until its newline arrives
}

// maxCRILine is where a long line is cut into partial pieces, as containerd does.
const maxCRILine = 16 << 10

func openCRILog(path string) (*criLog, error) {
	l := &criLog{path: path, partial: map[string][]byte{}}
	return l, l.reopen()
}

// reopen starts a new file at the path (the kubelet has moved the old one away).
func (l *criLog) reopen() error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (l *criLog) write(stream string, p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	buf := append(l.partial[stream], p...)
	var out bytes.Buffer
	for {
		i := bytes.IndexByte(buf, '\n')
		if i >= 0 && i <= maxCRILine {
			line(&out, now, stream, "F", buf[:i])
			buf = buf[i+1:]
		} else if len(buf) > maxCRILine {
			line(&out, now, stream, "P", buf[:maxCRILine])
			buf = buf[maxCRILine:]
		} else {
			break
		}
	}
	l.partial[stream] = append([]byte(nil), buf...)
	if out.Len() > 0 && l.f != nil {
		l.f.Write(out.Bytes())
	}
}

func line(out *bytes.Buffer, now, stream, tag string, text []byte) {
	out.WriteString(now)
	out.WriteByte(' ')
	out.WriteString(stream)
	out.WriteByte(' ')
	out.WriteString(tag)
	out.WriteByte(' ')
	out.Write(text)
	out.WriteByte('\n')
}

// flush writes the unterminated end of each stream as a last full line, at exit.
func (l *criLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var out bytes.Buffer
	for stream, buf := range l.partial {
		if len(buf) > 0 {
			line(&out, now, stream, "F", buf)
		}
		delete(l.partial, stream)
	}
	if out.Len() > 0 && l.f != nil {
		l.f.Write(out.Bytes())
	}
}
