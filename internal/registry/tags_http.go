package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
)

// maxCatalogPage bounds one page of /v2/_catalog (and is its default size).
const maxCatalogPage = 1000

// tagsList serves /v2/NAME/tags/list with n/last pagination.
func (s *Server) tagsList(w http.ResponseWriter, r *http.Request, rt route) error {
	rp := s.store.repo(rt.name)
	if !rp.exists() {
		return newError(CodeNameUnknown, map[string]string{"name": rt.name}, "repository %s unknown", rt.name)
	}
	tags, err := rp.tags()
	if err != nil {
		return err
	}
	page, next, err := paginate(tags, r.URL.Query(), -1)
	if err != nil {
		return err
	}
	if next != "" {
		setNextLink(w, location(rt.name, "tags", "list"), next, len(page))
	}
	return writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.name, page})
}

// catalog serves /v2/_catalog with n/last pagination.
func (s *Server) catalog(w http.ResponseWriter, r *http.Request, _ route) error {
	repos, err := s.store.Repositories()
	if err != nil {
		return err
	}
	page, next, err := paginate(repos, r.URL.Query(), maxCatalogPage)
	if err != nil {
		return err
	}
	if next != "" {
		setNextLink(w, "/v2/_catalog", next, len(page))
	}
	return writeJSON(w, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{page})
}

// paginate returns the entries of sorted after q's "last", at most q's "n" of them
// (limit, when positive, caps n and is the default), and the "last" of the next page if
// there is one.
func paginate(sorted []string, q url.Values, limit int) (page []string, next string, err error) {
	n := limit
	if v := q.Get("n"); v != "" {
		n, err = strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, "", newError(CodePaginationInvalid, map[string]string{"n": v}, "invalid page size n=%q", v)
		}
		if limit > 0 && n > limit {
			n = limit
		}
	}
	if last := q.Get("last"); last != "" {
		sorted = sorted[sort.SearchStrings(sorted, last):]
		if len(sorted) > 0 && sorted[0] == last {
			sorted = sorted[1:]
		}
	}
	page = sorted
	if n >= 0 && n < len(sorted) {
		page = sorted[:n]
		if n > 0 {
			next = page[n-1]
		}
	}
	if page == nil {
		page = []string{}
	}
	return page, next, nil
}

// setNextLink sets the RFC 5988 Link header the spec uses for the next page.
func setNextLink(w http.ResponseWriter, path, last string, n int) {
	q := url.Values{"last": {last}, "n": {strconv.Itoa(n)}}
	w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode()))
}

func writeJSON(w http.ResponseWriter, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}
