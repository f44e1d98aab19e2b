package registry

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The hashes below were made with the tools users have:
//
//	openssl passwd -apr1 -salt abcdefgh secret
//	openssl passwd -apr1 -salt 12345678 'pässwörd with spaces and a long tail: 0123456789abcdef'
//	openssl passwd -apr1 -salt x ''
//	htpasswd -nbB alice wonderland       (bcrypt, $2y$, cost 5)
//	htpasswd -nbm bob builder            (apr1)
//	htpasswd -nbB -C 4 carol 'c:ol'      (a colon in the password)
const testHtpasswd = `# users of the test registry
alice:$2y$05$8rFOgex2msFK2Rt7UgtcIuvFafuey2PBCoR4X.ZcWBiEe82PVRqla

bob:$apr1$aLsPI8L/$ihjfyWOrE1P8xCNBQxGOr1
carol:$2y$04$dKycpZJ3EmQeqCdpc.3YTu6C.45846BrPfCsJhBaworwNI1aCm9kC
`

func TestApr1MatchesOpenSSL(t *testing.T) {
	for _, tt := range []struct{ password, salt, want string }{
		{"secret", "abcdefgh", "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/"},
		{"pässwörd with spaces and a long tail: 0123456789abcdef", "12345678", "$apr1$12345678$c1YhrBu5LKy3.RmoVoZgL/"},
		{"", "x", "$apr1$x$tMwYqBfQwi3FYAr0aJc8M/"},
		// The salt is read up to its "$", as when verifying a stored hash.
		{"secret", "abcdefgh$h9FWgUz3n9YxylKLlR5SQ/", "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/"},
	} {
		if got := apr1(tt.password, tt.salt); got != tt.want {
			t.Errorf("apr1(%q, %q) = %q, want %q", tt.password, tt.salt, got, tt.want)
		}
	}
}

func TestHtpasswdVerify(t *testing.T) {
	// bcrypt's $2a$ and $2b$ prefixes are accepted as well as htpasswd's $2y$.
	h2a, _ := bcrypt.GenerateFromPassword([]byte("pw2a"), bcrypt.MinCost)
	h2b := strings.Replace(string(h2a), "$2a$", "$2b$", 1)
	users, err := parseHtpasswd("test", []byte(testHtpasswd+"dave:"+string(h2a)+"\neve:"+h2b+"\n"+
		"frank:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		user, password string
		ok             bool
	}{
		{"alice", "wonderland", true},
		{"alice", "Wonderland", false},
		{"alice", "", false},
		{"bob", "builder", true},
		{"bob", "builder ", false},
		{"carol", "c:ol", true},
		{"dave", "pw2a", true},
		{"eve", "pw2a", true},
		{"frank", "secret", true},
		{"frank", "secreT", false},
		{"mallory", "wonderland", false},
		{"", "", false},
	} {
		if got := users.verify(tt.user, tt.password); got != tt.ok {
			t.Errorf("verify(%q, %q) = %v, want %v", tt.user, tt.password, got, tt.ok)
		}
	}
}

func TestHtpasswdRefusesWhatItCannotCheck(t *testing.T) {
	for _, line := range []string{
		"plain:secret",                           // plain text
		"sha:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",  // htpasswd -s
		"crypt:abJnggxhB/yWI",                    // htpasswd -d
		"md5:$1$abcdefgh$xyz",                    // glibc md5-crypt, not apr1
		"nouser",                                 // no colon
		":$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/", // no user
		"bad:$2y$05$short",                       // broken bcrypt
		"bad:$apr1$nodollar",                     // broken apr1
	} {
		if _, err := parseHtpasswd("f", []byte(line+"\n")); err == nil {
			t.Errorf("parseHtpasswd accepted %q", line)
		}
	}
	if _, err := parseHtpasswd("f", []byte("# only a comment\n")); err == nil {
		t.Error("an htpasswd file without users was accepted")
	}
}
