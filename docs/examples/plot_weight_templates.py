"""
Weight templates of a linear classifier
=======================================

Softmax regression scores each class by a dot product of the image with that
class's row of ``coef_``, so each row can be drawn as an image: a template
of what the class looks like (positive weights) and what speaks against it
(negative weights). :func:`~fastsoftmax.plotting.plot_weights` draws them for
a :class:`~fastsoftmax.LogisticRegression` fitted on the 8x8 digits.
"""

import fastsoftmax as fs
from fastsoftmax.plotting import plot_weights

digits = fs.datasets.load_digits()
clf = fs.LogisticRegression(C=0.1, max_iter=200)
clf.fit(digits.X_train, digits.y_train)
print(f"test accuracy {clf.score(digits.X_test, digits.y_test):.3f}")

# a matplotlib Figure, drawn off-screen; fig.savefig("templates.png") writes it
fig = plot_weights(clf.coef_, digits.image_shape, classes=clf.classes_)
