package sarupb

import _ "embed"

// Regenerate after editing cluster.proto (a test in saru/node fails when it
// is out of date):
//
//go:generate sh -c "cd ../../.. && buf build --as-file-descriptor-set -o proto/saru/v1/cluster.binpb --path proto/saru/v1/cluster.proto"

// DescriptorSet is cluster.proto as a FileDescriptorSet that keeps its
// comments (source info), which the generated code drops. The server's
// reflection serves it so `grpcurl describe` shows every comment.
//
//go:embed cluster.binpb
var DescriptorSet []byte
