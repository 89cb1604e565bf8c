"""Column names used everywhere: one place, so book and code say the same thing."""

USER_COL = "user_id"
ITEM_COL = "item_id"
RATING_COL = "rating"
TIMESTAMP_COL = "timestamp"

#: The columns every interaction frame has (``timestamp`` may be absent for synthetic data).
INTERACTION_COLUMNS = (USER_COL, ITEM_COL, RATING_COL, TIMESTAMP_COL)
