package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// ApplyOptions say how a tar stream is laid onto a directory.
type ApplyOptions struct {
	// Whiteouts turns ".wh.NAME" entries into overlayfs whiteouts and ".wh..wh..opq"
	// into opaque directories (for image layers).
	Whiteouts bool
	// NoOverwriteDirNonDir refuses to replace a directory with a non-directory (docker cp).
	NoOverwriteDirNonDir bool
	// Chown, when set, owns every entry by UID:GID instead of the tar's owners.
	Chown *[2]int
}

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// ErrBadArchive is wrapped by every refusal of a hostile or malformed tar stream.
var ErrBadArchive = errors.New("invalid archive")

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: %s: %w", ErrBadArchive, fmt.Sprintf(format, a...), errdefs.ErrInvalid)
}

// CleanEntryName checks a tar entry's name and returns it as a clean relative path.
// Names that climb out of the root ("../x", "a/../../x") are refused, not rewritten.
func CleanEntryName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", bad("entry name contains NUL")
	}
	depth := 0
	for _, part := range strings.Split(name, "/") {
		switch part {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", bad("entry %q points outside the destination", name)
			}
		default:
			depth++
		}
	}
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	return clean, nil
}

// Apply extracts a tar stream into root. It never writes outside root: names that climb
// out are refused, and symbolic links inside root are resolved within root, so an
// archive's absolute symlink cannot redirect a later entry to the host. Device nodes
// are refused. It returns the number of bytes of file content written.
func Apply(root string, r io.Reader, o ApplyOptions) (int64, error) {
	tr := tar.NewReader(r)
	var size int64
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return size, bad("reading tar: %v", err)
		}
		name, err := CleanEntryName(hdr.Name)
		if err != nil {
			return size, err
		}
		if name == "" {
			continue // the root itself
		}
		dir, base := path.Split(name)
		parent, err := securejoin.SecureJoin(root, dir)
		if err != nil {
			return size, bad("entry %q: %v", hdr.Name, err)
		}
		if o.Whiteouts && strings.HasPrefix(base, whiteoutPrefix) {
			if err := os.MkdirAll(parent, 0o755); err != nil {
				return size, err
			}
			if base == whiteoutOpaque {
				if err := unix.Setxattr(parent, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
					return size, fmt.Errorf("opaque %s: %w", dir, err)
				}
				continue
			}
			target := filepath.Join(parent, strings.TrimPrefix(base, whiteoutPrefix))
			os.RemoveAll(target)
			if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
				return size, fmt.Errorf("whiteout %s: %w", name, err)
			}
			continue
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return size, fmt.Errorf("mkdir %s: %w", dir, err)
		}
		target := filepath.Join(parent, base)
		if fi, err := os.Lstat(target); err == nil {
			switch {
			case fi.IsDir() && hdr.Typeflag == tar.TypeDir:
				// keep the directory; its metadata is updated below
			case fi.IsDir() && o.NoOverwriteDirNonDir:
				return size, errdefs.Invalid(fmt.Sprintf("cannot overwrite directory %q with non-directory", "/"+name))
			default:
				if err := os.RemoveAll(target); err != nil {
					return size, err
				}
			}
		}
		mode := os.FileMode(hdr.Mode & 0o777)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o755); err != nil && !os.IsExist(err) {
				return size, err
			}
			dirs = append(dirs, dirTime{target, hdr.ModTime})
		case tar.TypeReg, tar.TypeRegA:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return size, err
			}
			n, err := io.Copy(f, tr)
			size += n
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return size, bad("entry %q: %v", hdr.Name, err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return size, err
			}
		case tar.TypeLink:
			lname, err := CleanEntryName(hdr.Linkname)
			if err != nil || lname == "" {
				return size, bad("hard link %q points outside the destination", hdr.Linkname)
			}
			src, err := securejoin.SecureJoin(root, lname)
			if err != nil {
				return size, bad("hard link %q: %v", hdr.Linkname, err)
			}
			if fi, err := os.Lstat(src); err != nil || fi.IsDir() {
				return size, bad("hard link %q to a missing file", hdr.Linkname)
			}
			if err := os.Link(src, target); err != nil {
				return size, err
			}
		case tar.TypeFifo:
			if err := unix.Mkfifo(target, uint32(mode)); err != nil {
				return size, err
			}
		case tar.TypeChar, tar.TypeBlock:
			return size, bad("entry %q is a device node", hdr.Name)
		case tar.TypeXGlobalHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
			continue
		default:
			return size, bad("entry %q has unsupported type %q", hdr.Name, hdr.Typeflag)
		}
		uid, gid := hdr.Uid, hdr.Gid
		if o.Chown != nil {
			uid, gid = o.Chown[0], o.Chown[1]
		}
		if err := os.Lchown(target, uid, gid); err != nil {
			return size, err
		}
		for k, v := range hdr.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				unix.Lsetxattr(target, x, []byte(v), 0)
			}
		}
		if hdr.Typeflag != tar.TypeSymlink {
			// chmod after chown: chown clears setuid bits.
			if err := os.Chmod(target, mode|typeBits(hdr)); err != nil {
				return size, err
			}
			if hdr.Typeflag != tar.TypeDir {
				os.Chtimes(target, hdr.ModTime, hdr.ModTime)
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chtimes(dirs[i].path, dirs[i].t, dirs[i].t)
	}
	return size, nil
}

func typeBits(hdr *tar.Header) os.FileMode {
	var m os.FileMode
	if hdr.Mode&04000 != 0 {
		m |= os.ModeSetuid
	}
	if hdr.Mode&02000 != 0 {
		m |= os.ModeSetgid
	}
	if hdr.Mode&01000 != 0 {
		m |= os.ModeSticky
	}
	return m
}
