package server

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"meeting.dev/meeting/internal/meeting"
)

// envelope is the seed's reply shape; HTTP status always equals Code.
type envelope struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
	Data any    `json:"data,omitempty"`
}

func ok(c *gin.Context, data any) {
	c.JSON(http.StatusOK, envelope{Code: http.StatusOK, Msg: "ok", Data: data})
}

func fail(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, envelope{Code: status, Msg: msg})
}

// failData is fail with data that tells the client more (when to retry).
func failData(c *gin.Context, status int, msg string, data any) {
	c.AbortWithStatusJSON(status, envelope{Code: status, Msg: msg, Data: data})
}

// notOpenData is the data of a 409 for a join before the room opens.
type notOpenData struct {
	BeginAt int64 `json:"begin_at"`
	OpensAt int64 `json:"opens_at"`
}

// inputError is bad input from the client, answered with its status and
// its message.
type inputError struct {
	status int
	msg    string
}

func (e *inputError) Error() string { return e.msg }

func badRequest(msg string) error { return &inputError{status: http.StatusBadRequest, msg: msg} }

// failErr maps an error to its reply. This is the one place where errors
// become statuses.
func (a *API) failErr(c *gin.Context, err error) {
	var (
		in       *inputError
		notOpen  *meeting.NotOpenError
		notReady *meeting.NotReadyError
	)
	switch {
	case errors.As(err, &in):
		fail(c, in.status, in.msg)
	case errors.As(err, &notOpen):
		failData(c, http.StatusConflict, err.Error(),
			notOpenData{BeginAt: millis(notOpen.BeginAt), OpensAt: millis(notOpen.OpensAt)})
	case errors.Is(err, meeting.ErrInvalid):
		fail(c, http.StatusBadRequest, err.Error())
	case errors.Is(err, meeting.ErrNotFound):
		fail(c, http.StatusNotFound, err.Error())
	case errors.Is(err, meeting.ErrForbidden):
		fail(c, http.StatusForbidden, err.Error())
	case errors.Is(err, meeting.ErrConflict):
		fail(c, http.StatusConflict, err.Error())
	case errors.Is(err, meeting.ErrEnded):
		fail(c, http.StatusGone, err.Error())
	case errors.Is(err, meeting.ErrRateLimited):
		c.Header("Retry-After", "3")
		fail(c, http.StatusTooManyRequests, err.Error())
	case errors.As(err, &notReady):
		a.log.Info("media not ready", "path", c.FullPath(), "err", err)
		retryAfter(c, notReady.RetryAfter)
		fail(c, http.StatusServiceUnavailable, notReady.Error())
	case errors.Is(err, meeting.ErrMediaNotReady):
		a.log.Info("media not ready", "path", c.FullPath(), "err", err)
		c.Header("Retry-After", "2")
		fail(c, http.StatusServiceUnavailable, "the meeting's media is still starting; try again in a few seconds")
	case c.Request.Context().Err() != nil:
		fail(c, http.StatusServiceUnavailable, "request cancelled")
	default:
		a.log.Error("request failed", "path", c.FullPath(), "err", err)
		fail(c, http.StatusInternalServerError, "internal error")
	}
}
