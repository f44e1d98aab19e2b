package image

import "testing"

func TestShortNamesNormaliseAsDockerDoes(t *testing.T) {
	for in, want := range map[string]string{
		"bb:1.0":                       "docker.io/library/bb:1.0",
		"bb":                           "docker.io/library/bb:latest",
		"docker.io/library/bb:1.0":     "docker.io/library/bb:1.0",
		"user/app":                     "docker.io/user/app:latest",
		"127.0.0.1:5000/app:1.0":       "127.0.0.1:5000/app:1.0",
		"localhost:5000/team/app:v2.1": "localhost:5000/team/app:v2.1",
	} {
		got, err := ParseReference(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseReference(%q) = %v, %v; want %s", in, got, err, want)
		}
		if fam := Familiar(want); in != "bb" && in != "user/app" && fam != Familiar(in) {
			t.Errorf("Familiar(%q) = %q", want, fam)
		}
	}
	if Familiar("docker.io/library/bb:1.0") != "bb:1.0" {
		t.Errorf("Familiar = %q", Familiar("docker.io/library/bb:1.0"))
	}
}

func TestBadReferencesAreRefused(t *testing.T) {
	for _, in := range []string{"", "UPPER:1", "bad name", "a:b:c", "::", "x@sha256:zz"} {
		if r, err := ParseReference(in); err == nil {
			t.Errorf("ParseReference(%q) = %v, want an error", in, r)
		}
	}
}

func TestIsID(t *testing.T) {
	for in, want := range map[string]bool{"abc123": true, "sha256:0f": true, "bz": false, "": false, "ABC": false} {
		if IsID(in) != want {
			t.Errorf("IsID(%q) = %v", in, !want)
		}
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"bb:1.0", "127.0.0.1:5000/a/b:c", "a@sha256:" + string(make([]byte, 64)), "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			return
		}
		// A parsed reference parses again to itself.
		again, err := ParseReference(r.String())
		if err != nil || again.String() != r.String() {
			t.Fatalf("%q -> %q -> %v, %v", s, r, again, err)
		}
	})
}
