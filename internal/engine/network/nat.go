package network

import (
	"encoding/binary"
	"net"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// writeRules (re)writes Berth's own table for this bridge, in one transaction, from the
// bridge's subnet and the ports published now:
//
//	table ip berth_BRIDGE {
//	  chain prerouting  { type nat hook prerouting priority dstnat; fib daddr type local jump publish }
//	  chain output      { type nat hook output priority dstnat; fib daddr type local jump publish }
//	  chain publish     { [ip daddr HOST-IP] meta l4proto P th dport HOST-PORT dnat to CTR-IP:CTR-PORT ... }
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	    ip saddr SUBNET ip daddr NO-MASQUERADE accept                # the cluster's pods
//	    ip saddr SUBNET oifname != BRIDGE masquerade                 # outbound
//	    oifname BRIDGE ct status dnat ip saddr 127.0.0.0/8 masquerade  # localhost -> published port
//	    oifname BRIDGE ct status dnat ip saddr SUBNET masquerade       # hairpin
//	  }
//	  chain forward { type filter hook forward priority filter;
//	    iifname BRIDGE accept; oifname BRIDGE ct state established,related accept;
//	    oifname BRIDGE ct status dnat accept }
//	}
//
// Nothing else on the host is touched: no policy changes, no other table's rules.
func (m *Manager) writeRules(maps []Mapping) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: m.table, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	publish := c.AddChain(&nftables.Chain{Name: "publish", Table: t})
	for _, hook := range []struct {
		name string
		num  *nftables.ChainHook
	}{{"prerouting", nftables.ChainHookPrerouting}, {"output", nftables.ChainHookOutput}} {
		ch := c.AddChain(&nftables.Chain{Name: hook.name, Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: hook.num, Priority: nftables.ChainPriorityNATDest})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: "publish"},
		}})
	}
	for _, p := range maps {
		c.AddRule(&nftables.Rule{Table: t, Chain: publish, Exprs: dnatRule(p)})
	}
	post := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	for _, dst := range m.cfg.NoMasquerade {
		if _, n, err := net.ParseCIDR(dst); err == nil && n.IP.To4() != nil {
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: cat(
				matchSubnet(m.subnet, 12), matchSubnet(n, 16),
				[]expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}},
			)})
		}
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: cat(
		matchSubnet(m.subnet, 12),
		matchIfname(expr.MetaKeyOIFNAME, m.cfg.Bridge, expr.CmpOpNeq),
		[]expr.Any{&expr.Masq{}},
	)})
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	for _, src := range []*net.IPNet{loopback, m.subnet} {
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: cat(
			matchIfname(expr.MetaKeyOIFNAME, m.cfg.Bridge, expr.CmpOpEq),
			ctStatusDNAT(),
			matchSubnet(src, 12),
			[]expr.Any{&expr.Masq{}},
		)})
	}
	fwd := c.AddChain(&nftables.Chain{
		Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
	})
	accept := []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	for _, other := range m.cfg.Isolate {
		if other == m.cfg.Bridge {
			continue
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(
			matchIfname(expr.MetaKeyIIFNAME, m.cfg.Bridge, expr.CmpOpEq),
			matchIfname(expr.MetaKeyOIFNAME, m.cfg.Bridge, expr.CmpOpNeq),
			matchIfname(expr.MetaKeyOIFNAME, other, expr.CmpOpEq),
			[]expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})})
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(
		matchIfname(expr.MetaKeyIIFNAME, m.cfg.Bridge, expr.CmpOpEq), accept)})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(
		matchIfname(expr.MetaKeyOIFNAME, m.cfg.Bridge, expr.CmpOpEq),
		[]expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		}, accept)})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(
		matchIfname(expr.MetaKeyOIFNAME, m.cfg.Bridge, expr.CmpOpEq), ctStatusDNAT(), accept)})
	return c.Flush()
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ctStatusDNAT matches connections whose destination was rewritten by a DNAT rule.
func ctStatusDNAT() []expr.Any {
	const ipsDstNAT = 0x20
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func be16(v uint16) []byte {
	b := make([]byte, 2)
	binary.BigEndian.PutUint16(b, v)
	return b
}

// dnatRule is "[ip daddr HOST-IP] meta l4proto P th dport HOST-PORT dnat to CTR-IP:CTR-PORT".
func dnatRule(p Mapping) []expr.Any {
	var ex []expr.Any
	if ip := net.ParseIP(p.HostIP).To4(); ip != nil && !ip.IsUnspecified() {
		ex = append(ex,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip})
	}
	proto := byte(unix.IPPROTO_TCP)
	if p.Proto == "udp" {
		proto = unix.IPPROTO_UDP
	}
	return append(ex,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(p.HostPort)},
		&expr.Immediate{Register: 1, Data: net.ParseIP(p.CtrIP).To4()},
		&expr.Immediate{Register: 2, Data: be16(p.CtrPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	)
}

// RemoveRules deletes Berth's table for this bridge, and its ports from the loopback
// shortcut (used when tearing a network down).
func (m *Manager) RemoveRules() error {
	m.cfg.Shortcut.set(m.cfg.Bridge, nil)
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: m.table, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	return c.Flush()
}

// matchSubnet matches the IPv4 address at offset (12 source, 16 destination).
func matchSubnet(n *net.IPNet, offset uint32) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: n.Mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: n.IP.To4()},
	}
}

// matchIfname compares an interface name; "br-*" compares the prefix only.
func matchIfname(key expr.MetaKey, name string, op expr.CmpOp) []expr.Any {
	var b []byte
	if prefix, ok := strings.CutSuffix(name, "*"); ok {
		b = []byte(prefix)
	} else {
		b = make([]byte, unix.IFNAMSIZ)
		copy(b, name)
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}
