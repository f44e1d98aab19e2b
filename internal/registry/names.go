package registry

import (
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

var (
	// nameRE is the distribution spec's repository name grammar. Because every component is
	// [a-z0-9]+ joined by separators, a valid name can never contain "..", a leading "/",
	// "_" at the start of a component (our metadata directories start with "_") or "%".
	nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	// tagRE is the spec's tag grammar. A tag never starts with "." so it is a safe file name.
	tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// maxNameLength bounds a repository name, as the reference registry does.
const maxNameLength = 255

// validName reports whether name is a repository name the spec allows.
func validName(name string) bool {
	return len(name) <= maxNameLength && nameRE.MatchString(name)
}

// validTag reports whether tag is a tag the spec allows.
func validTag(tag string) bool { return tagRE.MatchString(tag) }

// parseDigest parses a digest this registry can store: only sha256, lower-case hex, as
// every OCI and Docker client produces. Anything else is DIGEST_INVALID.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", newError(CodeDigestInvalid, map[string]string{"digest": s}, "invalid digest %q: %v", s, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", newError(CodeDigestInvalid, map[string]string{"digest": s}, "unsupported digest algorithm %q (only sha256)", d.Algorithm())
	}
	return d, nil
}

// reference is the <reference> of a manifest URL: a tag or a digest.
type reference struct {
	tag    string
	digest digest.Digest
}

func (r reference) String() string {
	if r.tag != "" {
		return r.tag
	}
	return r.digest.String()
}

// parseReference parses a manifest reference. Anything with a colon is a digest (tags cannot
// contain one).
func parseReference(s string) (reference, error) {
	if strings.Contains(s, ":") {
		d, err := parseDigest(s)
		return reference{digest: d}, err
	}
	if !validTag(s) {
		return reference{}, newError(CodeManifestInvalid, map[string]string{"tag": s}, "invalid tag %q", s)
	}
	return reference{tag: s}, nil
}
