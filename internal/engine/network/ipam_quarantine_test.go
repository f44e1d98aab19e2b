package network

import (
	"net"
	"testing"
)

func TestQuarantinedAddressesAreNotReusedUntilLifted(t *testing.T) {
	_, subnet, _ := net.ParseCIDR("10.1.3.0/29")
	a := newIPAM(subnet)
	first, _ := a.allocate("c1", nil)
	held := a.quarantine("c1")
	if again, _ := a.allocate("c1", nil); again.Equal(first) {
		t.Fatalf("the restarted owner got its quarantined address %s back", again)
	}
	if other, _ := a.allocate("c2", nil); other.Equal(first) {
		t.Fatalf("another owner got the quarantined address %s", other)
	}
	a.lift(held)
	if _, err := a.allocate("c3", first); err != nil {
		t.Fatalf("the lifted address is not free: %v", err)
	}
}
