# Builds the eventbus binary and ships it alone in a distroless image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/eventbus ./cmd/eventbus

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/eventbus /eventbus
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/eventbus"]
