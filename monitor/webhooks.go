package monitor

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventbus/eventbus/event"
	"github.com/eventbus/eventbus/webhook"
)

// The webhook endpoints of /api (CONTRACT.md v2, "Webhooks"). Everything
// runs as the caller (inTx): an organization's admin sees and changes only
// that organization's endpoints; the table's RLS decides, not this code.

type webhookRequest struct {
	URL            string   `json:"url"`
	EventTypes     []string `json:"event_types"`
	OrganizationID string   `json:"organization_id"`
	Secret         string   `json:"secret"`
	Description    string   `json:"description"`
	Enabled        *bool    `json:"enabled"`
}

func (s *Server) listWebhooks(r *http.Request, c caller) (int, any, error) {
	var list []webhook.Endpoint
	err := s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		var err error
		list, err = webhook.NewStore(tx).List(r.Context())
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	for i := range list {
		list[i].Secret = "" // shown once, when created or rotated
	}
	if list == nil {
		list = []webhook.Endpoint{}
	}
	return http.StatusOK, map[string]any{"webhooks": list}, nil
}

func (s *Server) addWebhook(r *http.Request, c caller) (int, any, error) {
	var req webhookRequest
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.URL == "" {
		return 0, nil, badRequest(http.StatusBadRequest, "url is required")
	}
	if err := webhook.CheckURL(req.URL, s.opts.WebhookAllowPrivate); err != nil {
		return 0, nil, badRequest(http.StatusBadRequest, "url: %v", err)
	}
	for _, p := range req.EventTypes {
		if !webhook.ValidPattern(p) {
			return 0, nil, badRequest(http.StatusBadRequest, "event_types: %q is not a pattern such as lead.created, lead.* or lead.>", p)
		}
	}
	if req.OrganizationID != "" && !event.ValidID(req.OrganizationID) {
		return 0, nil, badRequest(http.StatusBadRequest, "organization_id %q is not a UUID", req.OrganizationID)
	}
	if req.Secret != "" {
		if _, err := webhook.ParseSecret(req.Secret); err != nil {
			return 0, nil, badRequest(http.StatusBadRequest, "secret: %v", err)
		}
	}
	if req.OrganizationID == "" && c.claims != nil {
		// An admin's endpoint is for their organization unless they say
		// which (RLS refuses any other).
		if err := s.opts.Pool.QueryRow(r.Context(), `SELECT coalesce(organization_id::text, '') FROM public.profiles WHERE id = $1::uuid`, c.sub).Scan(&req.OrganizationID); err != nil {
			return 0, nil, err
		}
	}
	var e webhook.Endpoint
	err := s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		var err error
		e, err = webhook.NewStore(tx).Add(r.Context(), webhook.Endpoint{URL: req.URL, EventTypes: req.EventTypes,
			OrganizationID: req.OrganizationID, Secret: req.Secret, Enabled: req.Enabled == nil || *req.Enabled, Description: req.Description})
		return err
	})
	if err := refused(err, "an endpoint for another organization, or for every organization"); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, e, nil
}

func (s *Server) removeWebhook(r *http.Request, c caller) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	err = s.inTx(r.Context(), c, func(tx pgx.Tx) error { return webhook.NewStore(tx).Remove(r.Context(), id) })
	if errors.Is(err, webhook.ErrNotFound) {
		return 0, nil, badRequest(http.StatusNotFound, "no webhook %s", id)
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (s *Server) webhookDeliveries(r *http.Request, c caller) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	status := r.URL.Query().Get("status")
	switch status {
	case "", webhook.StatusPending, webhook.StatusDelivered, webhook.StatusFailed:
	default:
		return 0, nil, badRequest(http.StatusBadRequest, "status %q: want pending, delivered or failed", status)
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return 0, nil, badRequest(http.StatusBadRequest, "limit %q: want 1 to 1000", v)
		}
	}
	var list []webhook.Delivery
	err = s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		if err := visibleWebhook(r, tx, id); err != nil {
			return err
		}
		var err error
		list, err = webhook.NewStore(tx).Deliveries(r.Context(), id, status, limit)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if list == nil {
		list = []webhook.Delivery{}
	}
	return http.StatusOK, map[string]any{"deliveries": list}, nil
}

type redeliverRequest struct {
	DeliveryIDs []string `json:"delivery_ids"`
}

// redeliverWebhook makes the webhook's failed deliveries (or the ones
// named) pending again. Deliveries are the deliverer's to write: once the
// caller is shown to see the webhook, the update runs as the relay.
func (s *Server) redeliverWebhook(r *http.Request, c caller) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	var req redeliverRequest
	if r.ContentLength != 0 {
		if err := decodeBody(r, &req); err != nil {
			return 0, nil, err
		}
	}
	for _, d := range req.DeliveryIDs {
		if !event.ValidID(d) {
			return 0, nil, badRequest(http.StatusBadRequest, "delivery id %q is not a UUID", d)
		}
	}
	if err := s.inTx(r.Context(), c, func(tx pgx.Tx) error { return visibleWebhook(r, tx, id) }); err != nil {
		return 0, nil, err
	}
	n, err := webhook.NewStore(s.opts.Pool).Redeliver(r.Context(), id, req.DeliveryIDs)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]int64{"redelivered": n}, nil
}

// visibleWebhook answers 404 unless tx (the caller) sees webhook id.
func visibleWebhook(r *http.Request, tx pgx.Tx, id string) error {
	var ok bool
	if err := tx.QueryRow(r.Context(), `SELECT EXISTS (SELECT 1 FROM public.event_webhooks WHERE id = $1::uuid)`, id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return badRequest(http.StatusNotFound, "no webhook %s", id)
	}
	return nil
}

func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !event.ValidID(id) {
		return "", badRequest(http.StatusBadRequest, "webhook id %q is not a UUID", id)
	}
	return id, nil
}

// refused turns a row-level security refusal into a 403 saying what.
func refused(err error, what string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return badRequest(http.StatusForbidden, "not allowed: %s", what)
	}
	return err
}
