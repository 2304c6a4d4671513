//go:build linux

package task

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Bounds of one delivery attempt: a containerd that is up answers at once; one that is not
// refuses the connect at once; these only matter for a containerd that hangs.
const (
	dialTimeout    = time.Second
	forwardTimeout = 2 * time.Second
)

// remotePublisher delivers events to containerd's ttrpc events service (Events.Forward at
// containerd's TTRPC_ADDRESS), on one connection it re-dials after any failure: a containerd
// that restarted is a new listener on the same path.
//
// pkg/shim's own publisher is not used: it retries a failed event for about 15 s on a timer
// of its own and then drops it, and its retries overtake later events. The queue in events.go
// retries the oldest event itself, for as long as the shim lives, and keeps the order.
type remotePublisher struct {
	address string

	mu     sync.Mutex
	client *ttrpc.Client // nil: not connected
}

func newRemotePublisher(address string) *remotePublisher {
	return &remotePublisher{address: strings.TrimPrefix(address, "unix://")}
}

func (p *remotePublisher) deliver(ctx context.Context, e queuedEvent) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	body, err := typeurl.MarshalAnyToProto(e.event)
	if err != nil {
		return fmt.Errorf("marshal %s event: %w", e.topic, err)
	}
	client, err := p.connect()
	if err != nil {
		return retryable(err)
	}
	fctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	_, err = eventsapi.NewTTRPCEventsClient(client).Forward(fctx, &eventsapi.ForwardRequest{Envelope: &types.Envelope{
		Timestamp: protobuf.ToTimestamp(e.at),
		Namespace: ns,
		Topic:     e.topic,
		Event:     body,
	}})
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok && !transientCode(st.Code()) {
		return err // containerd answered, and said no: retrying would get the same answer
	}
	p.reset(client)
	return retryable(err)
}

// transientCode reports whether a status from the events service means "try again".
func transientCode(c codes.Code) bool {
	return c == codes.Unavailable || c == codes.DeadlineExceeded || c == codes.Canceled
}

// connect returns the connection, dialling one if there is none.
func (p *remotePublisher) connect() (*ttrpc.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return p.client, nil
	}
	conn, err := net.DialTimeout("unix", p.address, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", p.address, err)
	}
	p.client = ttrpc.NewClient(conn)
	return p.client, nil
}

// reset drops client if it is still the current connection.
func (p *remotePublisher) reset(client *ttrpc.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == client {
		_ = client.Close()
		p.client = nil
	}
}

// Close closes the connection.
func (p *remotePublisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return nil
	}
	err := p.client.Close()
	p.client = nil
	return err
}
