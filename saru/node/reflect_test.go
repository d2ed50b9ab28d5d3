package node

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"

	sarupb "github.com/saru-lb/saru/proto/saru/v1"
)

// TestEmbeddedDescriptorCurrent: the commented descriptor set served by
// reflection must describe the same API as the generated code.
func TestEmbeddedDescriptorCurrent(t *testing.T) {
	files, err := loadCommented()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := files.files.FindFileByPath("saru/v1/cluster.proto")
	if err != nil {
		t.Fatal(err)
	}
	got := protodesc.ToFileDescriptorProto(fd)
	if got.SourceCodeInfo == nil || len(got.SourceCodeInfo.Location) == 0 {
		t.Fatal("embedded descriptor has no comments")
	}
	got.SourceCodeInfo = nil
	want := protodesc.ToFileDescriptorProto(sarupb.File_saru_v1_cluster_proto)
	if !proto.Equal(got, want) {
		t.Fatal("proto/saru/v1/cluster.binpb is out of date: run `go generate ./proto/saru/v1`")
	}
}
