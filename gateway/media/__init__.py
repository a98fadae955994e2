"""The download path: pure HTTP decisions (ranges, conditionals, headers) and the byte pump."""
