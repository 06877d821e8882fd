"""The outcome-webhook dispatcher: videos' outcomes (`videos.status`, `videos.duplicates`, `videos.qc`) become
signed HTTP deliveries to the endpoints tenants registered over the gateway."""
