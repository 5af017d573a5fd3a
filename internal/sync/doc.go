// Package sync keeps the API's meetings (rows in MySQL) and the Meeting
// resources of one namespace in step, both ways. REST writes record an
// outbox entry in their own transaction; a worker applies each to the
// cluster by server-side apply (field manager FieldManager). A controller
// watches the Meetings: it imports those made with kubectl, makes rows follow
// kubectl edits, writes the operator's status back into meeting_cluster and,
// through the Finalizer, deletes rows of deleted Meetings. A periodic resync
// converges whatever changed while the API was down. Worker, watcher and
// resync run only on the elected leader. docs/sync.md describes the rules.
package sync

// What the API's sync, its Rooms and its signalling proxy use in the
// Meetings' namespace, and nothing else: config/rbac/api/role.yaml, the
// namespaced Role meeting-api, is generated from these by make generate
// (namespace meeting-system, where config/ deploys the API and its Meetings
// live; a Helm release renders its own namespace). Secrets are only read,
// one by name (the room Secret), never listed.
// +kubebuilder:rbac:groups=rtc.meeting.dev,resources=meetings,verbs=get;list;watch;create;update;patch;delete,namespace=meeting-system
// +kubebuilder:rbac:groups=rtc.meeting.dev,resources=meetings/status,verbs=get;patch;update,namespace=meeting-system
// +kubebuilder:rbac:groups=rtc.meeting.dev,resources=meetings/finalizers,verbs=update,namespace=meeting-system
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get,namespace=meeting-system
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch,namespace=meeting-system
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete,namespace=meeting-system
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch,namespace=meeting-system
