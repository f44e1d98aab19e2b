package shim

import (
	"bytes"
	"encoding/json"
	"os"
	"sync"
	"time"
)

// jsonLog writes Docker's json-file log format: one JSON object per line with the
// text, its stream and an RFC 3339 time with nanoseconds.
type jsonLog struct {
	mu sync.Mutex
	f  *os.File
	// partial holds a line's start until its newline arrives, per stream.
	partial map[string][]byte
}

type logEntry struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
}

func openJSONLog(path string) (*jsonLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &jsonLog{f: f, partial: map[string][]byte{}}, nil
}

func (l *jsonLog) write(stream string, p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	buf := append(l.partial[stream], p...)
	var out bytes.Buffer
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		line, _ := json.Marshal(logEntry{Log: string(buf[:i+1]), Stream: stream, Time: now})
		out.Write(line)
		out.WriteByte('\n')
		buf = buf[i+1:]
	}
	// A line longer than 16 KiB is written in pieces, as Docker does.
	if len(buf) >= 16<<10 {
		line, _ := json.Marshal(logEntry{Log: string(buf), Stream: stream, Time: now})
		out.Write(line)
		out.WriteByte('\n')
		buf = nil
	}
	l.partial[stream] = append([]byte(nil), buf...)
	if out.Len() > 0 {
		l.f.Write(out.Bytes())
	}
}

// flush writes any unterminated line, at exit.
func (l *jsonLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for stream, buf := range l.partial {
		if len(buf) > 0 {
			line, _ := json.Marshal(logEntry{Log: string(buf), Stream: stream, Time: now})
			l.f.Write(append(line, '\n'))
		}
		delete(l.partial, stream)
	}
}
