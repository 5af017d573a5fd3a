package server

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"meeting.dev/meeting/internal/store"
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
	var in *inputError
	switch {
	case errors.As(err, &in):
		fail(c, in.status, in.msg)
	case errors.Is(err, store.ErrNotFound):
		fail(c, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrForbidden):
		fail(c, http.StatusForbidden, err.Error())
	case errors.Is(err, store.ErrConflict):
		fail(c, http.StatusConflict, err.Error())
	case c.Request.Context().Err() != nil:
		fail(c, http.StatusServiceUnavailable, "request cancelled")
	default:
		a.log.Error("request failed", "path", c.FullPath(), "err", err)
		fail(c, http.StatusInternalServerError, "internal error")
	}
}
