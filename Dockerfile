# syntax=docker/dockerfile:1
#
# CsiCache: one image, one binary (`csicache`) for the node plugin, the
# controller and `csicache all`.
#
#   docker build -t ghcr.io/csicache/csicache:0.1.0 .
#
# Base images: .NET 10 ships no Debian images (the default tags are Ubuntu
# 24.04 "noble"), so both stages name noble explicitly: the OS under the
# driver's mount tools changes only when this file does.

FROM mcr.microsoft.com/dotnet/sdk:10.0-noble AS build
WORKDIR /src
# The whole tree (minus .dockerignore): global.json pins the SDK band,
# Directory.Packages.props the package versions, protos/ feeds Grpc.Tools.
# Copying only the project files first would cache the restore better but
# breaks whenever a project is added; the NuGet cache mount recovers most of
# that without the bookkeeping.
COPY . .
RUN --mount=type=cache,id=csicache-nuget,target=/root/.nuget/packages \
    dotnet publish src/Cli/CsiCache.Cli.csproj -c Release -o /out

FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble
# What the node plugin runs besides its own syscalls:
#   e2fsprogs        mkfs.ext4 / fsck.ext4 for local volumes
#   mount            losetup, mount, umount (util-linux's mount tools)
#   util-linux       blkid, fallocate
#   ca-certificates  TLS to S3 and HTTPS origins
# No fuse3: the FUSE session is our own mount(2) on /dev/fuse, not fusermount.
RUN apt-get update \
 && apt-get install -y --no-install-recommends e2fsprogs mount util-linux ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /out/ /app/
# The default user stays root: the node plugin needs it (mount(2), loop
# devices); the controller Deployment runs as the image's "app" user (1654).
ENTRYPOINT ["/app/csicache"]
