package services

import (
	"context"
	"fmt"

	"github.com/saru-lb/saru/saru/ipvs"

	sarupb "github.com/saru-lb/saru/proto/saru/v1"
)

// Lister serves ListServices from an IPVS listing (*ipvs.Client has List).
type Lister struct {
	Kernel interface {
		List(ctx context.Context) ([]ipvs.Entry, error)
	}
}

// ListServices returns the kernel's virtual services as saru.v1 messages,
// in the kernel's order.
func (l Lister) ListServices(ctx context.Context) ([]*sarupb.VirtualService, error) {
	es, err := l.Kernel.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return ToProto(es), nil
}
