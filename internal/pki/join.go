package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Joining a node. `berth server` keeps a join token, NODE-TOKEN = "B10" + hex(SHA-256 of
// the CA certificate PEM) + "::" + secret, as k3s does. An agent given the token and the
// server's URL fetches /cacerts without trusting the connection, checks the CA against
// the hash, and from then on trusts only that CA; it then posts to
// /berth/v1/node-credentials with the secret as a bearer token and gets a client
// certificate for system:node:NAME (group system:nodes) and a kubelet serving
// certificate for its addresses, both issued by the cluster CA, so the API server can
// verify the kubelets it calls.

const joinPrefix = "B10"

// JoinToken is the token for nodes that know secret.
func JoinToken(caPEM []byte, secret string) string {
	sum := sha256.Sum256(caPEM)
	return joinPrefix + hex.EncodeToString(sum[:]) + "::" + secret
}

// ParseJoinToken splits a join token into the CA hash it pins and its secret. A bare
// secret (no CA hash) is accepted too: the CA is then trusted on first use.
func ParseJoinToken(token string) (caHash, secret string, err error) {
	token = strings.TrimSpace(token)
	if h, s, ok := strings.Cut(token, "::"); ok {
		if !strings.HasPrefix(h, joinPrefix) || len(h) != len(joinPrefix)+64 || s == "" {
			return "", "", errors.New("malformed join token: want B10<sha256 of the CA>::<secret>")
		}
		return strings.TrimPrefix(h, joinPrefix), s, nil
	}
	if token == "" {
		return "", "", errors.New("empty join token")
	}
	return "", token, nil
}

// NodeCredentials is what a joining node gets.
type NodeCredentials struct {
	CA          []byte `json:"ca"`
	ClientCert  []byte `json:"clientCert"`
	ClientKey   []byte `json:"clientKey"`
	ServingCert []byte `json:"servingCert"`
	ServingKey  []byte `json:"servingKey"`
}

// IssueNode issues a node's client and kubelet serving certificates, in memory.
func (ca *CA) IssueNode(node string, names []string, ips []net.IP) (NodeCredentials, error) {
	creds := NodeCredentials{CA: ca.CertPEM()}
	var err error
	creds.ClientCert, creds.ClientKey, err = ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return creds, fmt.Errorf("client certificate for node %s: %w", node, err)
	}
	creds.ServingCert, creds.ServingKey, err = ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: node},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    append([]string{node}, names...),
		IPAddresses: ips,
	})
	if err != nil {
		return creds, fmt.Errorf("serving certificate for node %s: %w", node, err)
	}
	return creds, nil
}

func (ca *CA) issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := ca.sign(tmpl, &key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return encodePair(der, key)
}

// nodeRequest is the body of a credentials request.
type nodeRequest struct {
	Node      string   `json:"node"`
	Addresses []string `json:"addresses"`
}

// JoinHandler serves /cacerts and /berth/v1/node-credentials for nodes that present
// secret; other paths go to next.
func JoinHandler(ca *CA, secret string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cacerts":
			w.Header().Set("Content-Type", "application/x-pem-file")
			w.Write(ca.CertPEM())
		case "/berth/v1/node-credentials":
			auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if r.Method != http.MethodPost || subtle.ConstantTimeCompare([]byte(auth), []byte(secret)) != 1 {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			var req nodeRequest
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || !validNodeName(req.Node) {
				http.Error(w, "want {\"node\": NAME, \"addresses\": [...]} with a DNS-1123 node name", http.StatusBadRequest)
				return
			}
			var ips []net.IP
			var names []string
			for _, a := range req.Addresses {
				if ip := net.ParseIP(a); ip != nil {
					ips = append(ips, ip)
				} else if validNodeName(a) {
					names = append(names, a)
				}
			}
			creds, err := ca.IssueNode(req.Node, names, ips)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(creds)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func validNodeName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (c == '-' || c == '.') && i > 0 && i < len(s)-1
		if !ok {
			return false
		}
	}
	return true
}

// Join fetches the cluster CA from server (checked against the token's hash) and the
// node's credentials.
func Join(ctx context.Context, server, token, node string, addresses []string) (NodeCredentials, error) {
	hash, secret, err := ParseJoinToken(token)
	if err != nil {
		return NodeCredentials{}, err
	}
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	caPEM, err := fetch(ctx, insecure, http.MethodGet, server+"/cacerts", "", nil)
	if err != nil {
		return NodeCredentials{}, fmt.Errorf("fetch the cluster CA: %w", err)
	}
	if sum := sha256.Sum256(caPEM); hash != "" && hex.EncodeToString(sum[:]) != hash {
		return NodeCredentials{}, fmt.Errorf("the server's CA does not match the join token's hash: refusing to trust %s", server)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return NodeCredentials{}, fmt.Errorf("the server's /cacerts holds no certificate")
	}
	trusted := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body, _ := json.Marshal(nodeRequest{Node: node, Addresses: addresses})
	out, err := fetch(ctx, trusted, http.MethodPost, server+"/berth/v1/node-credentials", secret, body)
	if err != nil {
		return NodeCredentials{}, fmt.Errorf("node credentials: %w", err)
	}
	var creds NodeCredentials
	if err := json.Unmarshal(out, &creds); err != nil {
		return NodeCredentials{}, fmt.Errorf("node credentials: %w", err)
	}
	creds.CA = caPEM
	return creds, nil
}

func fetch(ctx context.Context, c *http.Client, method, url, bearer string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(data)))
	}
	return data, nil
}
