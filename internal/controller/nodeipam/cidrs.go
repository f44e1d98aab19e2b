package nodeipam

import (
	"errors"
	"fmt"
	"math/big"
	"net"
)

// ErrFull is returned when every block of the cluster CIDR is taken.
var ErrFull = errors.New("no pod CIDR left in the cluster CIDR")

// CIDRs hands out the maskSize-bit blocks of a cluster CIDR, lowest free first. It is
// not safe for concurrent use.
type CIDRs struct {
	cluster  *net.IPNet
	maskSize int
	used     []bool
}

// NewCIDRs splits cluster ("10.42.0.0/16") into blocks of maskSize bits (24).
func NewCIDRs(cluster string, maskSize int) (*CIDRs, error) {
	_, n, err := net.ParseCIDR(cluster)
	if err != nil {
		return nil, fmt.Errorf("cluster CIDR %q: %w", cluster, err)
	}
	ones, bits := n.Mask.Size()
	if maskSize < ones || maskSize > bits || maskSize-ones > 20 {
		return nil, fmt.Errorf("node CIDR mask size %d does not fit cluster CIDR %s (at most 2^20 blocks)", maskSize, cluster)
	}
	return &CIDRs{cluster: n, maskSize: maskSize, used: make([]bool, 1<<(maskSize-ones))}, nil
}

// Allocate takes the lowest free block.
func (c *CIDRs) Allocate() (string, error) {
	for i, u := range c.used {
		if !u {
			c.used[i] = true
			return c.block(i).String(), nil
		}
	}
	return "", ErrFull
}

// Occupy marks cidr as taken (a node already has it). It reports false for a CIDR
// that is not one of the blocks.
func (c *CIDRs) Occupy(cidr string) bool {
	i, ok := c.index(cidr)
	if ok {
		c.used[i] = true
	}
	return ok
}

// Release frees cidr.
func (c *CIDRs) Release(cidr string) {
	if i, ok := c.index(cidr); ok {
		c.used[i] = false
	}
}

func (c *CIDRs) block(i int) *net.IPNet {
	_, bits := c.cluster.Mask.Size()
	base := new(big.Int).SetBytes(normal(c.cluster.IP, c.cluster.IP))
	base.Add(base, new(big.Int).Lsh(big.NewInt(int64(i)), uint(bits-c.maskSize)))
	ip := make(net.IP, bits/8)
	base.FillBytes(ip)
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(c.maskSize, bits)}
}

func (c *CIDRs) index(cidr string) (int, bool) {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil || !c.cluster.Contains(ip) {
		return 0, false
	}
	if ones, _ := n.Mask.Size(); ones != c.maskSize {
		return 0, false
	}
	clusterOnes, bits := c.cluster.Mask.Size()
	a := new(big.Int).SetBytes(normal(n.IP, c.cluster.IP))
	b := new(big.Int).SetBytes(normal(c.cluster.IP, c.cluster.IP))
	i := new(big.Int).Rsh(a.Sub(a, b), uint(bits-c.maskSize))
	if !i.IsInt64() || i.Int64() >= int64(1)<<(c.maskSize-clusterOnes) {
		return 0, false
	}
	return int(i.Int64()), true
}

// normal returns ip in the byte length of like (4 for IPv4 clusters).
func normal(ip, like net.IP) []byte {
	if like.To4() != nil {
		return ip.To4()
	}
	return ip.To16()
}
