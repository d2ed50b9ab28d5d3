package node

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	sarupb "github.com/saru-lb/saru/proto/saru/v1"
)

// commentedFiles resolves saru.v1 from the embedded descriptor set (with
// comments) and everything else from the generated registry.
type commentedFiles struct{ files *protoregistry.Files }

func loadCommented() (*commentedFiles, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(sarupb.DescriptorSet, &set); err != nil {
		return nil, fmt.Errorf("embedded saru.v1 descriptor set: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("embedded saru.v1 descriptor set: %w", err)
	}
	return &commentedFiles{files: files}, nil
}

func (c *commentedFiles) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if f, err := c.files.FindFileByPath(path); err == nil {
		return f, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

func (c *commentedFiles) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := c.files.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}

// registerReflection serves gRPC reflection (v1 and v1alpha) with the
// commented saru.v1 descriptors, falling back to the plain ones.
func registerReflection(s *grpc.Server) error {
	files, err := loadCommented()
	if err != nil {
		reflection.Register(s)
		return err
	}
	opts := reflection.ServerOptions{Services: s, DescriptorResolver: files, ExtensionResolver: protoregistry.GlobalTypes}
	reflectionv1.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
	reflectionv1alpha.RegisterServerReflectionServer(s, reflection.NewServer(opts))
	return nil
}
