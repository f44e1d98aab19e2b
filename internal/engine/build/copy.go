package build

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/sys/user"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
)

// copyRequest is a COPY or ADD instruction after expansion.
type copyRequest struct {
	name     string // COPY or ADD
	sd       instructions.SourcesAndDest
	from     string
	chown    string
	chmod    string
	parents  bool
	exclude  []string
	add      bool
	checksum string
	unpack   *bool
}

// source is one thing to copy: a path on the host (in the context, a mounted image or
// a download) and how it is named at the destination.
type source struct {
	path    string
	name    string // base name used when the destination is a directory
	isDir   bool
	archive bool // ADD of a local tar: extracted, not copied
	data    *string
	mode    os.FileMode
}

// copyStep runs COPY and ADD: sources from the context, another stage or image, a
// heredoc or (ADD) a URL, written into the image as a new layer.
func (r *run) copyStep(s *stage, c copyRequest) error {
	if c.parents {
		return errdefs.Invalid(c.name + " --parents is not supported by Berth's builder")
	}
	if len(c.exclude) > 0 {
		return errdefs.Invalid(c.name + " --exclude is not supported by Berth's builder")
	}
	var chmod *os.FileMode
	if c.chmod != "" {
		m, err := strconv.ParseUint(c.chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return errdefs.Invalid(fmt.Sprintf("invalid chmod parameter %q: only octal modes are supported", c.chmod))
		}
		fm := fileMode(uint32(m))
		chmod = &fm
	}
	dest := c.sd.DestPath
	if !path.IsAbs(dest) {
		wd := s.cfg.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		trailing := strings.HasSuffix(dest, "/") || dest == "." || dest == ""
		dest = path.Join(wd, dest)
		if trailing {
			dest += "/"
		}
	}
	nSources := len(c.sd.SourcePaths) + len(c.sd.SourceContents)
	destIsDir := strings.HasSuffix(dest, "/")

	// Where the sources come from.
	var fromImg *image.Image
	if c.from != "" {
		if j, ok := stageIndex(r.plan.stages, c.from, r.cur); ok {
			fromImg = r.results[j]
			if fromImg == nil {
				return errdefs.Invalid(fmt.Sprintf("stage %s has no files to copy", c.from))
			}
		} else {
			img, err := r.b.be.Image(c.from)
			if err != nil {
				return errdefs.NotFound(fmt.Sprintf("%s --from=%s: no such stage or image", c.name, c.from))
			}
			fromImg = img
		}
	}

	// The step's identity: what it copies, by content, and where to.
	var desc []string
	var downloads []source
	for _, sc := range c.sd.SourceContents {
		sum := sha256.Sum256([]byte(sc.Data))
		desc = append(desc, "heredoc:"+hex.EncodeToString(sum[:]))
	}
	tmpDir := ""
	defer func() {
		if tmpDir != "" {
			os.RemoveAll(tmpDir)
		}
	}()
	switch {
	case fromImg != nil:
		desc = append(desc, "from:"+fromImg.ID.String()+":"+strings.Join(c.sd.SourcePaths, ":"))
	default:
		for _, p := range c.sd.SourcePaths {
			if isURL(p) {
				if !c.add {
					return errdefs.Invalid("source can't be a URL for COPY")
				}
				if tmpDir == "" {
					var err error
					if tmpDir, err = os.MkdirTemp(r.b.tmp, "add-"); err != nil {
						return err
					}
				}
				src, sum, err := download(r.ctx, p, tmpDir, c.checksum)
				if err != nil {
					return err
				}
				downloads = append(downloads, src)
				desc = append(desc, "url:"+p+":"+sum)
				continue
			}
			matches, err := contextSources(r.bc.dir, p)
			if err != nil {
				return err
			}
			nSources += len(matches) - 1
			var paths []string
			for _, m := range matches {
				paths = append(paths, m.path)
			}
			sum, err := r.bc.hash(paths)
			if err != nil {
				return err
			}
			kind := "file"
			if len(matches) == 1 && matches[0].isDir {
				kind = "dir"
			} else if len(matches) > 1 {
				kind = "multi"
			}
			desc = append(desc, kind+":"+sum)
		}
	}
	if nSources > 1 && !destIsDir {
		return errdefs.Invalid(fmt.Sprintf("When using %s with more than one source file, the destination must be a directory and end with a /", c.name))
	}
	flags := ""
	if c.chown != "" {
		flags += " --chown=" + c.chown
	}
	if c.chmod != "" {
		flags += " --chmod=" + c.chmod
	}
	text := fmt.Sprintf("%s%s %s in %s ", c.name, flags, strings.Join(desc, " "), dest)
	key := CacheKey(s.id(), text)
	if r.probe(s, key) {
		return nil
	}
	if err := r.ensureImage(s); err != nil {
		return err
	}

	write := func(srcRoot string) func(root string) error {
		return func(root string) error {
			owner, err := resolveOwner(root, c.chown)
			if err != nil {
				return err
			}
			var srcs []source
			for _, sc := range c.sd.SourceContents {
				data := sc.Data
				srcs = append(srcs, source{name: sc.Path, data: &data, mode: 0o644})
			}
			srcs = append(srcs, downloads...)
			for _, p := range c.sd.SourcePaths {
				if isURL(p) {
					continue
				}
				matches, err := contextSources(srcRoot, p)
				if err != nil {
					return err
				}
				if c.add && fromImg == nil && (c.unpack == nil || *c.unpack) {
					for i := range matches {
						matches[i].archive = !matches[i].isDir && isArchive(matches[i].path)
					}
				}
				srcs = append(srcs, matches...)
			}
			for _, src := range srcs {
				if err := place(root, src, dest, destIsDir || nSources > 1, owner, chmod); err != nil {
					return err
				}
			}
			return nil
		}
	}
	var layer digest.Digest
	var err error
	if fromImg != nil {
		err = r.b.be.View(r.ctx, fromImg, func(srcRoot string) error {
			layer, err = r.b.be.Change(r.ctx, s.img, write(srcRoot))
			return err
		})
	} else {
		layer, err = r.b.be.Change(r.ctx, s.img, write(r.bc.dir))
	}
	if err != nil {
		return err
	}
	return r.commit(s, key, "/bin/sh -c #(nop) "+text, layer)
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "git@")
}

func fileMode(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// contextSources resolves a source (a path or a glob) inside root. Symbolic links are
// followed only within root, and a path may not climb out of it.
func contextSources(root, pattern string) ([]source, error) {
	if strings.HasPrefix(path.Clean(pattern), "..") {
		return nil, errdefs.Invalid(fmt.Sprintf("forbidden path outside the build context: %s", pattern))
	}
	clean := path.Clean("/" + pattern)
	var rels []string
	if strings.ContainsAny(clean, "*?[") {
		matches, err := filepath.Glob(filepath.Join(root, clean))
		if err != nil {
			return nil, errdefs.Invalid(fmt.Sprintf("invalid source pattern %q: %v", pattern, err))
		}
		for _, m := range matches {
			rels = append(rels, strings.TrimPrefix(m, root))
		}
		if len(rels) == 0 {
			return nil, errdefs.NotFound(fmt.Sprintf("no source files were specified (%s matched nothing)", pattern))
		}
	} else {
		rels = []string{clean}
	}
	var out []source
	for _, rel := range rels {
		p, err := securejoin.SecureJoin(root, rel)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, errdefs.NotFound(fmt.Sprintf("file not found in build context or excluded by .dockerignore: stat %s: file does not exist", strings.TrimPrefix(rel, "/")))
		}
		out = append(out, source{path: p, name: path.Base(rel), isDir: fi.IsDir(), mode: fi.Mode()})
	}
	return out, nil
}

// place writes one source at dest inside root: a directory's contents go into dest,
// a file goes to dest (or into it when dest is a directory), an archive is unpacked.
func place(root string, src source, dest string, intoDir bool, owner *[2]int, chmod *os.FileMode) error {
	switch {
	case src.isDir:
		target, err := mkdirAllIn(root, dest, 0o755, owner)
		if err != nil {
			return err
		}
		return copyTree(src.path, target, owner, chmod)
	case src.archive:
		target, err := mkdirAllIn(root, dest, 0o755, owner)
		if err != nil {
			return err
		}
		return unpackArchive(src.path, target, owner)
	}
	name := dest
	if intoDir || strings.HasSuffix(dest, "/") {
		name = path.Join(dest, src.name)
	} else if p, err := securejoin.SecureJoin(root, dest); err == nil {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			name = path.Join(dest, src.name)
		}
	}
	dir, err := mkdirAllIn(root, path.Dir(name), 0o755, owner)
	if err != nil {
		return err
	}
	target := filepath.Join(dir, path.Base(name))
	if src.data != nil {
		mode := os.FileMode(0o644)
		if chmod != nil {
			mode = *chmod
		}
		return writeFile(target, strings.NewReader(*src.data), mode, owner, nil)
	}
	fi, err := os.Lstat(src.path)
	if err != nil {
		return err
	}
	if fi.IsDir() { // a symlink to a directory, resolved: copy like a directory
		return copyTree(src.path, target, owner, chmod)
	}
	return copyEntry(src.path, target, fi, owner, chmod)
}

// mkdirAllIn creates dir (a path inside root, symlinks resolved within root) and the
// directories above it, owned by owner (root when nil); it returns the host path.
func mkdirAllIn(root, dir string, mode os.FileMode, owner *[2]int) (string, error) {
	p, err := securejoin.SecureJoin(root, dir)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(p); err == nil {
		if !fi.IsDir() {
			return "", errdefs.Invalid(fmt.Sprintf("cannot create directory %s: a file is in the way", dir))
		}
		return p, nil
	}
	// Create one level at a time, each resolved again, so a symlink made by an
	// earlier level cannot lead outside root.
	cur := "/"
	for _, part := range strings.Split(strings.Trim(path.Clean(dir), "/"), "/") {
		if part == "" {
			continue
		}
		cur = path.Join(cur, part)
		hp, err := securejoin.SecureJoin(root, cur)
		if err != nil {
			return "", err
		}
		if err := os.Mkdir(hp, mode); err != nil {
			if !os.IsExist(err) {
				return "", err
			}
			continue
		}
		if owner != nil {
			os.Lchown(hp, owner[0], owner[1])
		}
	}
	return securejoin.SecureJoin(root, dir)
}

// copyTree copies the tree at src into the directory dst (its contents, not itself).
func copyTree(src, dst string, owner *[2]int, chmod *os.FileMode) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	return filepath.Walk(src, func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, src), "/")
		if rel == "" {
			return nil
		}
		return copyEntry(p, filepath.Join(dst, rel), fi, owner, chmod)
	})
}

// copyEntry copies one file, directory or symlink, with its mode and mtime. The
// owner is owner, or root:root as Docker gives copied files.
func copyEntry(src, dst string, fi fs.FileInfo, owner *[2]int, chmod *os.FileMode) error {
	uid, gid := 0, 0
	if owner != nil {
		uid, gid = owner[0], owner[1]
	}
	mode := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	if chmod != nil {
		mode = *chmod
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(src)
		if err != nil {
			return err
		}
		removeNonDir(dst)
		if err := os.Symlink(link, dst); err != nil {
			return err
		}
		return os.Lchown(dst, uid, gid)
	case fi.IsDir():
		if err := os.Mkdir(dst, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		os.Chmod(dst, mode)
		os.Lchown(dst, uid, gid)
		os.Chtimes(dst, fi.ModTime(), fi.ModTime())
		return nil
	case fi.Mode().IsRegular():
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		t := fi.ModTime()
		return writeFile(dst, f, mode, &[2]int{uid, gid}, &t)
	}
	return nil // devices and fifos are not copied
}

func removeNonDir(p string) {
	if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
		os.Remove(p)
	}
}

func writeFile(dst string, r io.Reader, mode os.FileMode, owner *[2]int, mtime *time.Time) error {
	removeNonDir(dst)
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	uid, gid := 0, 0
	if owner != nil {
		uid, gid = owner[0], owner[1]
	}
	if err := os.Lchown(dst, uid, gid); err != nil {
		return err
	}
	if err := os.Chmod(dst, mode); err != nil { // after chown, which clears setuid bits
		return err
	}
	if mtime != nil {
		os.Chtimes(dst, *mtime, *mtime)
	}
	return nil
}

// resolveOwner turns --chown's USER[:GROUP] into ids, looking names up in the image's
// /etc/passwd and /etc/group. Without a group the gid is the uid, as Docker does it.
func resolveOwner(root, spec string) (*[2]int, error) {
	if spec == "" {
		return nil, nil
	}
	u, g, hasGroup := strings.Cut(spec, ":")
	lookup := func(file, name string, find func(string, string) (int, bool)) (int, error) {
		if n, err := strconv.Atoi(name); err == nil && n >= 0 {
			return n, nil
		}
		p, err := securejoin.SecureJoin(root, file)
		if err != nil {
			return 0, err
		}
		if id, ok := find(p, name); ok {
			return id, nil
		}
		return 0, errdefs.Invalid(fmt.Sprintf("unable to convert uid/gid chown string to host mapping: can't find uid for user %s: no such user: %s", name, name))
	}
	uid, err := lookup("/etc/passwd", u, func(p, name string) (int, bool) {
		us, err := user.ParsePasswdFileFilter(p, func(x user.User) bool { return x.Name == name })
		if err != nil || len(us) == 0 {
			return 0, false
		}
		return us[0].Uid, true
	})
	if err != nil {
		return nil, err
	}
	gid := uid
	if hasGroup {
		gid, err = lookup("/etc/group", g, func(p, name string) (int, bool) {
			gs, err := user.ParseGroupFileFilter(p, func(x user.Group) bool { return x.Name == name })
			if err != nil || len(gs) == 0 {
				return 0, false
			}
			return gs[0].Gid, true
		})
		if err != nil {
			return nil, err
		}
	}
	return &[2]int{uid, gid}, nil
}
