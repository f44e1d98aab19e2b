package build

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/snapshot"
)

// download fetches an ADD URL into dir and returns it as a source (mode 0600, the
// server's Last-Modified as mtime, as Docker does) with the sha256 of its content.
func download(ctx context.Context, rawURL, dir, checksum string) (source, string, error) {
	if strings.HasPrefix(rawURL, "git@") || strings.HasSuffix(rawURL, ".git") {
		return source{}, "", errdefs.Invalid(fmt.Sprintf("ADD %s: git sources are not supported by Berth's builder", rawURL))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return source{}, "", errdefs.Invalid(fmt.Sprintf("ADD: invalid URL %q: %v", rawURL, err))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return source{}, "", errdefs.Invalid(fmt.Sprintf("ADD %s: %v", rawURL, err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return source{}, "", errdefs.Unavailable(fmt.Sprintf("ADD %s: download failed (is the host reachable from the engine?): %v", rawURL, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return source{}, "", errdefs.Unavailable(fmt.Sprintf("ADD %s: download failed: %s", rawURL, resp.Status))
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		name = "index.html"
	}
	p := filepath.Join(dir, fmt.Sprintf("%d-%s", len(rawURL), filepath.Base(name)))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return source{}, "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return source{}, "", errdefs.Unavailable(fmt.Sprintf("ADD %s: download failed: %v", rawURL, err))
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if checksum != "" {
		want, err := digest.Parse(checksum)
		if err != nil {
			return source{}, "", errdefs.Invalid(fmt.Sprintf("ADD --checksum=%s: %v", checksum, err))
		}
		if want.Algorithm() != digest.SHA256 || want.Encoded() != sum {
			return source{}, "", errdefs.Invalid(fmt.Sprintf("ADD %s: digest mismatch: expected %s, got sha256:%s", rawURL, want, sum))
		}
	}
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		os.Chtimes(p, lm, lm)
	}
	return source{path: p, name: name, mode: 0o600}, sum, nil
}

// archiveReader opens a tar, gzip tar or bzip2 tar for reading the tar stream.
func archiveReader(p string) (io.Reader, func(), error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	magic, _ := br.Peek(3)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return bufio.NewReaderSize(gz, 64<<10), func() { gz.Close(); f.Close() }, nil
	case len(magic) == 3 && string(magic) == "BZh":
		return bufio.NewReaderSize(bzip2.NewReader(br), 64<<10), func() { f.Close() }, nil
	}
	return br, func() { f.Close() }, nil
}

// isArchive reports whether ADD should unpack the local file at p.
func isArchive(p string) bool {
	r, done, err := archiveReader(p)
	if err != nil {
		return false
	}
	defer done()
	head, _ := r.(*bufio.Reader).Peek(512)
	return len(head) == 512 && isTar(head)
}

// unpackArchive extracts the archive at p into dir. Entries keep the tar's owners
// unless --chown was given; nothing lands outside dir.
func unpackArchive(p, dir string, owner *[2]int) error {
	r, done, err := archiveReader(p)
	if err != nil {
		return err
	}
	defer done()
	_, err = snapshot.Apply(dir, r, snapshot.ApplyOptions{Chown: owner})
	return err
}
