package network

import (
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// EmbeddedDNS is the address Docker's embedded DNS server answers on inside containers
// of user networks.
const EmbeddedDNS = "127.0.0.11"

// Lookup finds the IPv4 addresses that a name has for the asker (the container whose
// server answers): container names, aliases and ids on the networks it is attached to.
type Lookup func(asker, name string) []net.IP

// Resolver answers DNS inside containers: names of the network's containers from
// Lookup, everything else forwarded to the host's resolvers.
type Resolver struct {
	lookup   Lookup
	upstream []string
	client   *dns.Client
	// Servers, when set, names the resolvers an asker was given with --dns; they are
	// asked instead of the host's.
	Servers func(asker string) []string
}

// NewResolver reads the host's nameservers from resolvConf.
func NewResolver(lookup Lookup, resolvConf string) *Resolver {
	r := &Resolver{lookup: lookup, client: &dns.Client{Timeout: 4 * time.Second}}
	if cfg, err := dns.ClientConfigFromFile(resolvConf); err == nil {
		for _, s := range cfg.Servers {
			r.upstream = append(r.upstream, net.JoinHostPort(s, cfg.Port))
		}
	}
	return r
}

func (r *Resolver) handler(asker string) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		if len(q.Question) == 1 {
			qq := q.Question[0]
			name := strings.TrimSuffix(strings.ToLower(qq.Name), ".")
			if ips := r.lookup(asker, name); len(ips) > 0 {
				m := new(dns.Msg)
				m.SetReply(q)
				m.Authoritative = true
				if qq.Qtype == dns.TypeA || qq.Qtype == dns.TypeANY {
					for _, ip := range ips {
						m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 600}, A: ip})
					}
				}
				w.WriteMsg(m)
				return
			}
		}
		upstream := r.upstream
		if r.Servers != nil {
			if own := r.Servers(asker); len(own) > 0 {
				upstream = nil
				for _, s := range own {
					upstream = append(upstream, net.JoinHostPort(s, "53"))
				}
			}
		}
		for _, up := range upstream {
			resp, _, err := r.client.Exchange(q, up)
			if err == nil {
				w.WriteMsg(resp)
				return
			}
		}
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeServerFailure)
		w.WriteMsg(m)
	})
}

// Serve starts the embedded DNS server inside the network namespace at nsPath, for the
// container asker. The sockets are made inside the namespace and served from the
// engine; Close stops them.
func (r *Resolver) Serve(nsPath, asker string) (*DNSServer, error) {
	pc, ln, err := listenInNetNS(nsPath, EmbeddedDNS+":53")
	if err != nil {
		return nil, err
	}
	h := r.handler(asker)
	s := &DNSServer{udp: &dns.Server{PacketConn: pc, Handler: h}, tcp: &dns.Server{Listener: ln, Handler: h}}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	return s, nil
}

// DNSServer is one container's embedded DNS server.
type DNSServer struct {
	udp, tcp *dns.Server
	once     sync.Once
}

// Close stops the server.
func (s *DNSServer) Close() error {
	s.once.Do(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
	return nil
}

// listenInNetNS opens a UDP and a TCP socket inside another network namespace. A
// socket stays in the namespace it was made in, so only the making needs the switch.
func listenInNetNS(nsPath, addr string) (net.PacketConn, net.Listener, error) {
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, nil, err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, nil, err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return nil, nil, err
	}
	pc, perr := net.ListenPacket("udp4", addr)
	ln, lerr := net.Listen("tcp4", addr)
	if err := netns.Set(orig); err != nil {
		// A thread stuck in the container's namespace must not be reused.
		fmt.Fprintln(os.Stderr, "berth: cannot return to the host network namespace:", err)
		goruntime.Goexit()
	}
	if perr != nil || lerr != nil {
		if pc != nil {
			pc.Close()
		}
		if ln != nil {
			ln.Close()
		}
		return nil, nil, fmt.Errorf("embedded DNS in %s: %v %v", nsPath, perr, lerr)
	}
	return pc, ln, nil
}
