package ckpt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ckpt/ckptpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// writeCert writes a certificate signed by ca (self-signed when ca is nil) and its key as PEM files.
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	_ = os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func TestEndToEndMutualTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	writeCert(t, dir, "server", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "coordinator"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: []string{"coordinator.test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, caKey)
	writeCert(t, dir, "client", &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "worker"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, caKey)
	file := func(n string) string { return filepath.Join(dir, n) }
	c := startClusterOf(t, 1, "--tls-cert", file("server.pem"), "--tls-key", file("server-key.pem"), "--tls-client-ca", file("ca.pem"))
	w, err := NewWorker(Options{Coordinators: []string{c.coordinator}, NATSURL: c.natsURL, JobID: "go-e2e-tls",
		StateURI: "file://" + t.TempDir(), TLSCAFile: file("ca.pem"), TLSCertFile: file("client.pem"), TLSKeyFile: file("client-key.pem"),
		TLSServerName: "coordinator.test", Logf: func(f string, a ...interface{}) { t.Logf("worker: "+f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	// Submit with the worker's own connection settings.
	conn, err := w.conn(c.coordinator)
	if err != nil {
		t.Fatal(err)
	}
	c.clients[0] = ckptpb.NewCoordinatorClient(conn)
	c.client = c.clients[0]
	c.submit(t, &ckptpb.JobSpec{JobId: "go-e2e-tls", Tasks: []*ckptpb.TaskSpec{{TaskId: "src"}, {TaskId: "sink", Inputs: []string{"src"}}},
		Policy: &ckptpb.CheckpointPolicy{IntervalMs: 150, Compression: ckptpb.StateCompression_STATE_COMPRESSION_NONE}})
	sink := &faultySink{aborted: make(chan uint64, 100), completed: make(chan uint64, 100), restored: make(chan uint64, 10)}
	_ = w.AddTask("src", e2eSource{limit: 1 << 40})
	_ = w.AddTask("sink", sink)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-sink.completed:
	case <-time.After(30 * time.Second):
		t.Fatal("no checkpoint completed over mutual TLS")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	// Without a client certificate the handshake fails.
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	plain, err := grpc.Dial(c.coordinator, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "coordinator.test"})))
	if err == nil {
		defer plain.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := ckptpb.NewCoordinatorClient(plain).GetJob(ctx, &ckptpb.GetJobRequest{JobId: "go-e2e-tls"}); err == nil {
			t.Error("a call without a client certificate succeeded")
		}
	}
}
