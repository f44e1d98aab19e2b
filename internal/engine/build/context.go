package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/zeebo/blake3"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/snapshot"
)

// buildContext is the build context unpacked in a directory. The content of every
// regular file is hashed (BLAKE3, twice as fast as SHA-256 here) while it is unpacked,
// so a COPY's cache key costs no second read.
type buildContext struct {
	dir    string
	hashes map[string]string // path relative to dir -> sha256 of the content
}

// maxDockerfile bounds a Dockerfile read into memory.
const maxDockerfile = 8 << 20

// unpackContext reads the request body: a tar (plain, gzip or bzip2) of the context, or
// a bare Dockerfile (`docker build - < Dockerfile`), which becomes a context holding
// just that file. It reports whether the body was a bare Dockerfile.
func unpackContext(dir string, body io.Reader) (*buildContext, bool, error) {
	c := &buildContext{dir: dir, hashes: map[string]string{}}
	br := bufio.NewReaderSize(body, 64<<10)
	r := io.Reader(br)
	magic, _ := br.Peek(3)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, false, errdefs.Invalid("build context: " + err.Error())
		}
		defer gz.Close()
		r = bufio.NewReaderSize(gz, 64<<10)
	case len(magic) == 3 && string(magic) == "BZh":
		r = bufio.NewReaderSize(bzip2.NewReader(br), 64<<10)
	case len(magic) >= 2 && magic[0] == 0xfd && magic[1] == '7':
		return nil, false, errdefs.Invalid("build context: xz-compressed contexts are not supported; send a plain or gzip tar")
	}
	head, _ := r.(*bufio.Reader).Peek(512)
	if !isTar(head) {
		data, err := io.ReadAll(io.LimitReader(r, maxDockerfile+1))
		if err != nil {
			return nil, false, errdefs.Invalid("build context: " + err.Error())
		}
		if len(data) > maxDockerfile {
			return nil, false, errdefs.Invalid("build context is neither a tar archive nor a Dockerfile")
		}
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), data, 0o644); err != nil {
			return nil, false, err
		}
		return c, true, nil
	}
	if err := c.extract(r); err != nil {
		return nil, false, err
	}
	return c, false, nil
}

// isTar reports whether b starts with a tar header (ustar, gnu or v7 with a valid checksum).
func isTar(b []byte) bool {
	if len(b) < 512 {
		return len(b) == 0 // an empty body is an empty context
	}
	if bytes.Equal(b[257:262], []byte("ustar")) {
		return true
	}
	var sum int64
	for i, c := range b[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	stored := strings.TrimRight(strings.TrimSpace(string(b[148:156])), "\x00")
	var want int64
	_, err := fmt.Sscanf(stored, "%o", &want)
	return err == nil && want == sum
}

// extract unpacks the tar stream: names that climb out of the context are refused,
// links are made as links (never followed while writing), devices are skipped.
func (c *buildContext) extract(r io.Reader) error {
	tr := tar.NewReader(r)
	ph := newPipeHash()
	defer ph.close()
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errdefs.Invalid("build context: " + err.Error())
		}
		rel, err := snapshot.CleanEntryName(hdr.Name)
		if err != nil {
			return errdefs.Invalid("build context: " + err.Error())
		}
		if rel == "" {
			continue
		}
		parent, err := securejoin.SecureJoin(c.dir, filepath.Dir(rel))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		p := filepath.Join(parent, filepath.Base(rel))
		mode := os.FileMode(hdr.Mode) & os.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(p, mode|0o700); err != nil && !os.IsExist(err) {
				return err
			}
			os.Chmod(p, mode|0o700)
		case tar.TypeReg:
			os.Remove(p)
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			sum, err := ph.copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return errdefs.Invalid("build context: " + err.Error())
			}
			os.Chmod(p, mode) // the umask took bits the tar asked for
			c.hashes[rel] = sum
		case tar.TypeSymlink:
			os.Remove(p)
			if err := os.Symlink(hdr.Linkname, p); err != nil {
				return err
			}
		case tar.TypeLink:
			target, err := snapshot.CleanEntryName(hdr.Linkname)
			if err != nil {
				return errdefs.Invalid("build context: " + err.Error())
			}
			src, err := securejoin.SecureJoin(c.dir, target)
			if err != nil {
				return err
			}
			os.Remove(p)
			if err := os.Link(src, p); err != nil {
				return errdefs.Invalid(fmt.Sprintf("build context: hard link %s: %v", hdr.Name, err))
			}
			c.hashes[rel] = c.hashes[target]
		default:
			// Devices, fifos and the like have no place in an image built from a context.
			continue
		}
		os.Chtimes(p, hdr.ModTime, hdr.ModTime)
	}
}

// readIgnore returns the context's .dockerignore patterns.
func (c *buildContext) readIgnore() ([]string, error) {
	f, err := os.Open(filepath.Join(c.dir, ".dockerignore"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pats, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, errdefs.Invalid("parsing .dockerignore: " + err.Error())
	}
	return pats, nil
}

// applyIgnore deletes what .dockerignore excludes (the CLI already left it out; other
// clients may not have). It runs after the Dockerfile was read: when .dockerignore
// names the Dockerfile or itself, as the CLI's does for `-f -` and for a Dockerfile
// from outside the context, they go too, and COPY . does not bring them in.
func (c *buildContext) applyIgnore() error {
	pats, err := c.readIgnore()
	if err != nil || len(pats) == 0 {
		return err
	}
	pm, err := patternmatcher.New(pats)
	if err != nil {
		return errdefs.Invalid("parsing .dockerignore: " + err.Error())
	}
	var drop []string
	err = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == c.dir {
			return err
		}
		rel := strings.TrimPrefix(p, c.dir+"/")
		m, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if m {
			drop = append(drop, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Deepest first, so a directory with a `!`-kept file inside keeps that file.
	sort.Sort(sort.Reverse(sort.StringSlice(drop)))
	for _, rel := range drop {
		p := filepath.Join(c.dir, rel)
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			os.Remove(p) // only if empty
			continue
		}
		os.Remove(p)
		delete(c.hashes, rel)
	}
	return nil
}

// hash returns a digest of the trees at the given paths (inside the context): names,
// types, modes, link targets and contents, not times, as Docker's cache ignores mtimes.
func (c *buildContext) hash(paths []string) (string, error) {
	h := sha256.New()
	for _, root := range paths {
		err := filepath.Walk(root, func(p string, fi fs.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel := strings.TrimPrefix(p, c.dir+"/")
			name := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
			fmt.Fprintf(h, "%s\x00%o\x00", name, fi.Mode())
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				l, _ := os.Readlink(p)
				fmt.Fprintf(h, "%s\x00", l)
			case fi.Mode().IsRegular():
				sum, ok := c.hashes[rel]
				if !ok {
					var err error
					if sum, err = fileHash(p); err != nil {
						return err
					}
				}
				fmt.Fprintf(h, "%s\x00", sum)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileHash(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := blake3.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// pipeHash copies file contents to disk while another goroutine hashes them: on a
// large context, hashing and writing then overlap instead of adding up.
type pipeHash struct {
	work chan []byte // chunks to hash; nil ends a file
	free chan []byte // chunks the hasher is done with
	sums chan string
}

func newPipeHash() *pipeHash {
	const chunks = 4
	p := &pipeHash{work: make(chan []byte, chunks), free: make(chan []byte, chunks), sums: make(chan string)}
	for i := 0; i < chunks; i++ {
		p.free <- make([]byte, 256<<10)
	}
	go func() {
		h := blake3.New()
		for b := range p.work {
			if b == nil {
				p.sums <- hex.EncodeToString(h.Sum(nil))
				h.Reset()
				continue
			}
			h.Write(b)
			p.free <- b[:cap(b)]
		}
	}()
	return p
}

// copy writes r to w and returns the sha256 of what it wrote.
func (p *pipeHash) copy(w io.Writer, r io.Reader) (string, error) {
	var err error
	for {
		buf := <-p.free
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil && err == nil {
				err = werr
			}
			p.work <- buf[:n]
		} else {
			p.free <- buf
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			if err == nil {
				err = rerr
			}
			break
		}
	}
	p.work <- nil
	return <-p.sums, err
}

func (p *pipeHash) close() { close(p.work) }
