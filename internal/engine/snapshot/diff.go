package snapshot

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Change is one entry of `docker diff`: Kind 0 modified, 1 added, 2 deleted.
type Change struct {
	Path string
	Kind int
}

func isWhiteout(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0
}

func isOpaque(path string) bool {
	buf := make([]byte, 2)
	n, err := unix.Lgetxattr(path, "trusted.overlay.opaque", buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

// Changes lists what a container changed against its image: each path in the upper
// directory is added (absent below), modified, or deleted (an overlayfs whiteout).
func (a *Active) Changes() ([]Change, error) {
	var out []Change
	err := filepath.Walk(a.Upper, func(p string, fi fs.FileInfo, err error) error {
		if err != nil || p == a.Upper {
			return err
		}
		rel := "/" + strings.TrimPrefix(p, a.Upper+"/")
		switch {
		case isWhiteout(fi):
			out = append(out, Change{rel, 2})
		case a.inLower(rel):
			out = append(out, Change{rel, 0})
		default:
			out = append(out, Change{rel, 1})
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

func (a *Active) inLower(rel string) bool {
	for _, l := range a.Lower {
		if _, err := os.Lstat(filepath.Join(l, rel)); err == nil {
			return true
		}
	}
	return false
}

// WriteDiff writes the upper directory as an image layer: whiteouts become ".wh."
// entries and opaque directories get ".wh..wh..opq".
func (a *Active) WriteDiff(w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.Walk(a.Upper, func(p string, fi fs.FileInfo, err error) error {
		if err != nil || p == a.Upper {
			return err
		}
		rel := strings.TrimPrefix(p, a.Upper+"/")
		if isWhiteout(fi) {
			dir, base := filepath.Split(rel)
			return tw.WriteHeader(&tar.Header{Name: dir + whiteoutPrefix + base, Typeflag: tar.TypeReg, Mode: 0o600, ModTime: fi.ModTime()})
		}
		if err := writeEntry(tw, p, rel, fi); err != nil {
			return err
		}
		if fi.IsDir() && isOpaque(p) {
			return tw.WriteHeader(&tar.Header{Name: rel + "/" + whiteoutOpaque, Typeflag: tar.TypeReg, Mode: 0o600, ModTime: fi.ModTime()})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// WriteTar writes the tree at src as a tar stream whose entries are named under
// prefix (prefix "" names them relative to src; src itself is included when it is a
// file). Hard links within the tree are kept as links.
func WriteTar(w io.Writer, src, prefix string) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	err := filepath.Walk(src, func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, src), "/")
		name := filepath.Join(prefix, rel)
		if name == "" || name == "." {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			k := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[k]; ok {
				hdr, _ := tar.FileInfoHeader(fi, "")
				hdr.Name, hdr.Typeflag, hdr.Linkname, hdr.Size = name, tar.TypeLink, first, 0
				return tw.WriteHeader(hdr)
			}
			links[k] = name
		}
		return writeEntry(tw, p, name, fi)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, p, name string, fi fs.FileInfo) error {
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return nil // sockets and the like are skipped, as Docker does
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.Format = tar.FormatPAX
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
	}
	if capv, err := getxattr(p, "security.capability"); err == nil {
		hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": capv}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if fi.Mode().IsRegular() {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
			return err
		}
	}
	return nil
}

func getxattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
