// Package sandbox serves containerd's shim-side Sandbox API (containerd.runtime.sandbox.v1.Sandbox)
// beside the Task service, on the shim's ttrpc socket: the pause-less pods of a CRI runtime
// handler with `sandboxer = "shim"` (containerd 2.3 or later). It is the API adapter of package pod, as
// package task is of package process: it decodes requests, calls pod, and answers; errors wrap an
// errdefs class (the server's interceptor, package lifetime's, turns them into gRPC codes for every service
// of the server).
//
// A sandbox moves Created (CreateSandbox) → Ready (StartSandbox) → Stopped (StopSandbox, or its
// holder died) → gone (ShutdownSandbox). Its member containers are tasks of the Task service in
// the same shim; the shim exits once it has neither a pod nor a container (task.service.Shutdown,
// and pod.Set.OnRemove for a ShutdownSandbox that comes last: then after removeGrace, answering
// meanwhile, since containerd's controller may send ShutdownSandbox again).
//
// Goroutines: none of its own; WaitSandbox blocks its caller until the pod stops.
package sandbox
