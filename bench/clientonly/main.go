// Command clientonly measures the docker client by itself: it serves, on a unix socket,
// the requests that `docker run --rm IMAGE CMD` and `docker ps` make, and answers each at
// once (the container "exits 0" the moment it is started). Timing those commands against
// it gives the part of every timed command that is the client's own work, the same for
// both engines (bench/run.sh: "client alone"). It is a measuring tool, not an engine.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

func main() {
	sock := flag.String("sock", "", "unix socket to serve on")
	listFrom := flag.String("list-from", "", "an engine's socket: GET /containers/json is answered with its list, fetched once")
	flag.Parse()
	if *sock == "" {
		log.Fatal("usage: clientonly -sock PATH [-list-from ENGINE_SOCK]")
	}
	list := []byte("[]")
	if *listFrom != "" {
		var err error
		if list, err = fetchList(*listFrom); err != nil {
			log.Fatalf("fetching the container list: %v", err)
		}
	}
	os.Remove(*sock)
	ln, err := net.Listen("unix", *sock)
	if err != nil {
		log.Fatal(err)
	}
	s := &server{list: list, started: map[string]chan struct{}{}}
	srv := &http.Server{Handler: s}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	os.Remove(*sock)
}

func fetchList(sock string) ([]byte, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://engine/containers/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

type server struct {
	list []byte

	mu      sync.Mutex
	n       int
	started map[string]chan struct{} // closed by the container's start
}

// idOf is the container ID in path (/vX/containers/ID/op).
func idOf(path string) string {
	parts := strings.Split(path, "/")
	if len(parts) < 3 {
		return ""
	}
	return parts[len(parts)-2]
}

// container returns the start channel of the container named in path.
func (s *server) container(path string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started[idOf(path)]
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", "1.50")
	w.Header().Set("Ostype", "linux")
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/_ping"):
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "OK")
	case strings.HasSuffix(p, "/containers/json"):
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.list)
	case strings.HasSuffix(p, "/containers/create"):
		s.mu.Lock()
		s.n++
		id := fmt.Sprintf("%064x", s.n)
		s.started[id] = make(chan struct{})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"Id":%q,"Warnings":[]}`, id)
	case strings.HasSuffix(p, "/attach"):
		started := s.container(p)
		if started == nil {
			notFound(w)
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
		buf.Flush()
		<-started // no output; the stream ends with the container
		conn.Close()
	case strings.HasSuffix(p, "/wait"):
		started := s.container(p)
		if started == nil {
			notFound(w)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-started
		io.WriteString(w, `{"StatusCode":0}`+"\n")
		s.mu.Lock()
		delete(s.started, idOf(p))
		s.mu.Unlock()
	case strings.HasSuffix(p, "/start"):
		started := s.container(p)
		if started == nil {
			notFound(w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		s.mu.Lock()
		select {
		case <-started:
		default:
			close(started)
		}
		s.mu.Unlock()
	default:
		notFound(w)
	}
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	io.WriteString(w, `{"message":"clientonly serves docker run --rm and docker ps only"}`)
}
