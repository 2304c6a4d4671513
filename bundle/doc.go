// Package bundle owns a container's bundle as the shim uses it: reading its OCI spec
// (config.json) once per Create, the changes the shim makes to it (the process's terminal, a
// pause-less pod's files for its members), written back once, atomically; the annotations the
// shim goes by (the CRI plugin's sandbox id, the shim's group); and the atomic replacement of a
// file (ReplaceFile), which the shim's other files (address, options) and the node installer's
// configs use too.
//
// It is at the bottom of the package map: it imports nothing of the shim's. A Spec is not safe
// for concurrent use: one Create owns it. No goroutines.
package bundle
