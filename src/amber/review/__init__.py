"""Human review: the queue, locks and reviewers' outcomes."""
