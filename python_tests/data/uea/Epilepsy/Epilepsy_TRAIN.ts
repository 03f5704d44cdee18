# Tiny hand-made fixture in the UEA Epilepsy format (3 accelerometer axes, 4 classes).
# Not real data: solsa-ext tests only. Values chosen for hand-computable statistics.
@problemName Epilepsy
@timeStamps false
@missing false
@univariate false
@dimensions 3
@equalLength true
@seriesLength 4
@classLabel true epilepsy walking running sawing
@data
1.0,2.0,3.0,4.0:0.0,0.0,0.0,0.0:10.0,10.0,10.0,10.0:walking
5.0,6.0,7.0,8.0:2.0,2.0,2.0,2.0:20.0,20.0,20.0,20.0:epilepsy
1.0,1.0,1.0,1.0:4.0,4.0,4.0,4.0:30.0,30.0,30.0,30.0:sawing
3.0,3.0,3.0,3.0:6.0,6.0,6.0,6.0:40.0,40.0,40.0,40.0:running
