package registry

import (
	"crypto/md5"
	"strings"
)

// apr1 computes Apache's MD5-crypt ("$apr1$SALT$HASH", what `htpasswd -m` writes): the
// FreeBSD md5crypt algorithm with the magic "$apr1$". salt is cut at "$" and to 8 bytes.
func apr1(password, salt string) string {
	const magic = "$apr1$"
	salt, _, _ = strings.Cut(salt, "$")
	if len(salt) > 8 {
		salt = salt[:8]
	}
	pw := []byte(password)

	alt := md5.New()
	alt.Write(pw)
	alt.Write([]byte(salt))
	alt.Write(pw)
	altSum := alt.Sum(nil)

	ctx := md5.New()
	ctx.Write(pw)
	ctx.Write([]byte(magic))
	ctx.Write([]byte(salt))
	for i := len(pw); i > 0; i -= 16 {
		ctx.Write(altSum[:min(i, 16)])
	}
	for i := len(pw); i > 0; i >>= 1 {
		if i&1 != 0 {
			ctx.Write([]byte{0})
		} else {
			ctx.Write(pw[:1])
		}
	}
	final := ctx.Sum(nil)

	// 1000 rounds, to make brute force slower (this is the algorithm, not a choice).
	for i := 0; i < 1000; i++ {
		c := md5.New()
		if i&1 != 0 {
			c.Write(pw)
		} else {
			c.Write(final)
		}
		if i%3 != 0 {
			c.Write([]byte(salt))
		}
		if i%7 != 0 {
			c.Write(pw)
		}
		if i&1 != 0 {
			c.Write(final)
		} else {
			c.Write(pw)
		}
		final = c.Sum(nil)
	}

	var out strings.Builder
	out.WriteString(magic + salt + "$")
	for _, g := range [][3]int{{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}} {
		to64(&out, uint(final[g[0]])<<16|uint(final[g[1]])<<8|uint(final[g[2]]), 4)
	}
	to64(&out, uint(final[11]), 2)
	return out.String()
}

// to64 writes the n low 6-bit groups of v in crypt's base-64 alphabet, least significant first.
func to64(out *strings.Builder, v uint, n int) {
	const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	for ; n > 0; n-- {
		out.WriteByte(itoa64[v&0x3f])
		v >>= 6
	}
}
