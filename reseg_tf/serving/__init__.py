"""Loading trained models, segmenting images, SavedModel export."""
