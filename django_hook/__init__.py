"""eventlog's Django app: middleware, endpoints, tracker."""
