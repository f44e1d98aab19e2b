package network

import (
	"net"
	"testing"
)

func TestIPAMHandsOutFreeAddressesAndReusesReleasedOnes(t *testing.T) {
	_, subnet, _ := net.ParseCIDR("10.1.2.0/29") // .1 gateway, .2-.6 usable, .7 broadcast
	a := newIPAM(subnet)
	if a.gateway().String() != "10.1.2.1" {
		t.Fatalf("gateway = %s", a.gateway())
	}
	var got []string
	for i := 0; i < 5; i++ {
		ip, err := a.allocate(string(rune('a'+i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip.String())
	}
	if got[0] != "10.1.2.2" || got[4] != "10.1.2.6" {
		t.Fatalf("allocated %v", got)
	}
	if _, err := a.allocate("f", nil); err == nil {
		t.Fatal("a full subnet handed out another address")
	}
	a.release("c")
	if ip, err := a.allocate("g", nil); err != nil || ip.String() != "10.1.2.4" {
		t.Fatalf("after release got %v, %v; want 10.1.2.4", ip, err)
	}
	if ip, _ := a.allocate("a", nil); ip.String() != "10.1.2.2" {
		t.Fatalf("the same owner asking again got %v", ip)
	}
	if _, err := a.allocate("h", net.ParseIP("10.1.2.2").To4()); err == nil {
		t.Fatal("an address in use was handed out twice")
	}
	if _, err := a.allocate("h", net.ParseIP("192.168.0.1").To4()); err == nil {
		t.Fatal("an address outside the subnet was accepted")
	}
}
