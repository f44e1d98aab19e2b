package cri

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/registry"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
)

// criImage describes a stored image. Its tags are fully qualified
// ("docker.io/library/bb:1.0"), as containerd reports them.
func (s *Server) criImage(img *image.Image) *runtimeapi.Image {
	st := s.eng.Images()
	out := &runtimeapi.Image{
		Id: img.ID.String(), RepoTags: st.RefsOf(img.ID), RepoDigests: st.RepoDigestsOf(img.ID),
		Size: uint64(st.Size(img)), Spec: &runtimeapi.ImageSpec{Image: img.ID.String()},
	}
	u, _, _ := strings.Cut(img.Config.Config.User, ":")
	if n, err := strconv.ParseInt(u, 10, 64); err == nil {
		out.Uid = &runtimeapi.Int64Value{Value: n}
	} else {
		out.Username = u
	}
	return out
}

func (s *imageService) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	return &runtimeapi.ListImagesResponse{Images: s.listImages(req.Filter)}, nil
}

func (s *imageService) StreamImages(req *runtimeapi.StreamImagesRequest, stream runtimeapi.ImageService_StreamImagesServer) error {
	return stream.Send(&runtimeapi.StreamImagesResponse{Images: s.listImages(req.Filter)})
}

func (s *imageService) listImages(f *runtimeapi.ImageFilter) []*runtimeapi.Image {
	out := []*runtimeapi.Image{}
	if ref := f.GetImage().GetImage(); ref != "" {
		if img, err := s.eng.Images().Get(ref); err == nil {
			out = append(out, s.criImage(img))
		}
		return out
	}
	for _, img := range s.eng.Images().List() {
		out = append(out, s.criImage(img))
	}
	return out
}

// ImageStatus answers with no image, and no error, for one that is not there.
func (s *imageService) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("image is required")
	}
	img, err := s.eng.Images().Get(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ImageStatusResponse{Image: s.criImage(img)}
	if req.Verbose {
		resp.Info = map[string]string{"info": string(img.Raw)}
	}
	return resp, nil
}

// PullImage pulls with the engine (docker pull's way) and answers with the image id,
// which the kubelet then names the image by.
func (s *imageService) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("image is required")
	}
	var auth *registry.AuthConfig
	if a := req.Auth; a != nil {
		auth = &registry.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth,
			ServerAddress: a.ServerAddress, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
	}
	t0 := time.Now()
	img, err := s.eng.Pull(ctx, ref, auth, func(engine.Progress) {})
	if err != nil {
		return nil, err
	}
	s.log.Info("image pulled", "image", ref, "id", img.ID.String(), "took", time.Since(t0))
	return &runtimeapi.PullImageResponse{ImageRef: img.ID.String()}, nil
}

// RemoveImage deletes an image and all its tags; one that is not there is no error.
func (s *imageService) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("image is required")
	}
	img, err := s.eng.Images().Get(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := s.eng.RemoveImage(ctx, img.ID.String(), true, false); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

func (s *imageService) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	dir, used := s.eng.ImageFsUsage()
	fs := &runtimeapi.FilesystemUsage{Timestamp: time.Now().UnixNano(), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: dir},
		UsedBytes: &runtimeapi.UInt64Value{Value: used}, InodesUsed: &runtimeapi.UInt64Value{}}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{fs}}, nil
}
