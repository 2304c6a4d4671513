//go:build linux

package task

import (
	"context"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/protobuf"

	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// Delete deletes a stopped process; for an init, the whole container.
//
// A container's Delete whose caller gave up before the answer (ttrpc carries the caller's
// deadline into ctx) is done all the same, but the container is kept, deleted, until a retry
// takes the answer: containerd keeps its record of the task for that retry, and its client asks
// the task's State first and stops at a NotFound, so that containerd never runs its delete and
// never asks the shim to shut down (an orphaned shim; the reference shim has the same hole).
// Kept, the container's State is STOPPED with its exit, and the retry's Delete answers what the
// first would have.
func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		if err := p.Delete(ctx); err != nil {
			return nil, err
		}
		c.RemoveExec(r.ExecID)
		return deleteResponse(p), nil
	}
	c.deleting.Lock()
	defer c.deleting.Unlock()
	if s.answerRetry(c) {
		return deleteResponse(p), nil
	}
	if err := p.Delete(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if ctx.Err() == nil {
		delete(s.containers, r.ID)
	} else {
		c.unanswered = true
	}
	s.mu.Unlock()
	s.oom.release(r.ID) // OOM hook
	resp := deleteResponse(p)
	s.events.send(&eventstypes.TaskDelete{ContainerID: r.ID, Pid: resp.Pid, ExitStatus: resp.ExitStatus, ExitedAt: resp.ExitedAt})
	return resp, nil
}

// answerRetry forgets c and reports true if its Delete was done but never answered.
func (s *service) answerRetry(c *container) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.unanswered || s.containers[c.id] != c {
		return false
	}
	delete(s.containers, c.id)
	return true
}

func deleteResponse(p process.Process) *taskAPI.DeleteResponse {
	status, at := p.Exit()
	return &taskAPI.DeleteResponse{Pid: uint32(p.Pid()), ExitStatus: uint32(status), ExitedAt: protobuf.ToTimestamp(at)}
}
