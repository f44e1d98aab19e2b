package image

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// ParseReference normalises a user's image name the way Docker does: "bb:1.0" is
// "docker.io/library/bb:1.0", and a name without tag or digest means ":latest".
func ParseReference(s string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, fmt.Errorf("invalid reference format: %s: %w", s, errdefs.ErrInvalid)
	}
	return reference.TagNameOnly(named), nil
}

// Familiar is how Docker prints a stored reference ("bb:1.0").
func Familiar(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarString(named)
}

// IsID reports whether s looks like an image id or id prefix (hex, optionally "sha256:").
func IsID(s string) bool {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ShortID is the 12-hex form Docker prints.
func ShortID(id digest.Digest) string {
	e := id.Encoded()
	if len(e) > 12 {
		return e[:12]
	}
	return e
}
