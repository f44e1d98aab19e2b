package registry

import (
	"strings"
)

// routeKind names an endpoint of the distribution API.
type routeKind int

const (
	routeNone      routeKind = iota
	routeBase                // /v2/
	routeCatalog             // /v2/_catalog
	routeTags                // /v2/NAME/tags/list
	routeManifest            // /v2/NAME/manifests/REF
	routeBlob                // /v2/NAME/blobs/DIGEST
	routeUploadNew           // /v2/NAME/blobs/uploads/
	routeUpload              // /v2/NAME/blobs/uploads/UUID
	routeReferrers           // /v2/NAME/referrers/DIGEST
)

// route is a parsed /v2 URL path. name has been validated; arg (reference, digest or upload
// id) has not, because what is valid there depends on the endpoint.
type route struct {
	kind routeKind
	name string
	arg  string
}

// parseRoute maps an escaped URL path to an endpoint. Names and references never need
// percent-escapes, so any escape other than an encoded colon (which some clients send in
// digests) is refused as NAME_INVALID: that is how "%2e%2e" and encoded slashes are kept
// out. Because the name is everything before the last endpoint keyword, a name that is
// itself a keyword ("a/blobs/b") still parses. Paths outside /v2 give routeNone.
func parseRoute(escaped string) (route, error) {
	rest, ok := strings.CutPrefix(escaped, "/v2")
	if !ok {
		return route{}, nil
	}
	if rest == "" || rest == "/" {
		return route{kind: routeBase}, nil
	}
	if rest[0] != '/' {
		return route{}, nil
	}
	rest = rest[1:]
	if rest == "_catalog" {
		return route{kind: routeCatalog}, nil
	}
	if strings.Contains(rest, "%") {
		rest = strings.ReplaceAll(strings.ReplaceAll(rest, "%3A", ":"), "%3a", ":")
		if strings.Contains(rest, "%") {
			return route{}, newError(CodeNameInvalid, nil, "escaped characters are not allowed in repository names or references")
		}
	}

	var r route
	var name string
	switch {
	case strings.HasSuffix(rest, "/tags/list"):
		r.kind, name = routeTags, strings.TrimSuffix(rest, "/tags/list")
	case strings.HasSuffix(rest, "/blobs/uploads/") || strings.HasSuffix(rest, "/blobs/uploads"):
		r.kind, name = routeUploadNew, rest[:strings.LastIndex(rest, "/blobs/uploads")]
	default:
		const up = "/blobs/uploads/"
		if i := strings.LastIndex(rest, up); i >= 0 && !strings.Contains(rest[i+len(up):], "/") {
			r.kind, name, r.arg = routeUpload, rest[:i], rest[i+len(up):]
			break
		}
		i, kind, klen := lastKeyword(rest)
		if i < 0 {
			return route{}, nil
		}
		r.kind, name, r.arg = kind, rest[:i], rest[i+klen:]
		if r.arg == "" || strings.Contains(r.arg, "/") {
			return route{}, nil
		}
	}
	if !validName(name) {
		return route{}, newError(CodeNameInvalid, map[string]string{"name": name}, "invalid repository name %q", name)
	}
	r.name = name
	return r, nil
}

// lastKeyword finds the right-most "/manifests/", "/blobs/" or "/referrers/" in p, returning
// its index, the route it names and its length.
func lastKeyword(p string) (int, routeKind, int) {
	best, kind, klen := -1, routeNone, 0
	for _, k := range []struct {
		s    string
		kind routeKind
	}{{"/manifests/", routeManifest}, {"/blobs/", routeBlob}, {"/referrers/", routeReferrers}} {
		if i := strings.LastIndex(p, k.s); i > best {
			best, kind, klen = i, k.kind, len(k.s)
		}
	}
	return best, kind, klen
}
