package network

import (
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// setupNAT (re)writes Berth's own table for this bridge:
//
//	table ip berth_BRIDGE {
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	    ip saddr SUBNET oifname != BRIDGE masquerade }
//	  chain forward { type filter hook forward priority filter;
//	    iifname BRIDGE accept; oifname BRIDGE ct state established,related accept }
//	}
//
// Nothing else on the host is touched: no policy changes, no other table's rules.
func (m *Manager) setupNAT() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: m.table, Family: nftables.TableFamilyIPv4}
	// Delete and re-add in one transaction: idempotent across engine restarts.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	post := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: append(append(
		matchSubnet(m.subnet, 12),
		matchIfname(expr.MetaKeyOIFNAME, m.cfg.Bridge, expr.CmpOpNeq)...),
		&expr.Masq{},
	)})
	fwd := c.AddChain(&nftables.Chain{
		Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: append(
		matchIfname(expr.MetaKeyIIFNAME, m.cfg.Bridge, expr.CmpOpEq),
		&expr.Verdict{Kind: expr.VerdictAccept},
	)})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: append(append(
		matchIfname(expr.MetaKeyOIFNAME, m.cfg.Bridge, expr.CmpOpEq),
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: le32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: le32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le32(0)}),
		&expr.Verdict{Kind: expr.VerdictAccept},
	)})
	return c.Flush()
}

// RemoveRules deletes Berth's table for this bridge (used when tearing a network down).
func (m *Manager) RemoveRules() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: m.table, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	return c.Flush()
}

func le32(v uint32) []byte {
	return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// matchSubnet matches the IPv4 address at offset (12 source, 16 destination).
func matchSubnet(n *net.IPNet, offset uint32) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: n.Mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: n.IP.To4()},
	}
}

func matchIfname(key expr.MetaKey, name string, op expr.CmpOp) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}
