// Package v1alpha1 holds the Meeting API: group rtc.meeting.dev, version v1alpha1.
//
// A Meeting says who meets and when; the operator brings up the room's media
// (one SFU and one TURN server) shortly before beginAt and removes it after endAt.
//
// +kubebuilder:object:generate=true
// +groupName=rtc.meeting.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group is the API group of every type in this package.
const Group = "rtc.meeting.dev"

// GroupVersion is the group and version of every type in this package.
var GroupVersion = schema.GroupVersion{Group: Group, Version: "v1alpha1"}

// AddToScheme registers the types of this package with a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Meeting{}, &MeetingList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
